# make demo: record a capture into ./n2disk-data and show what was stored.
# make test: every test (root tests need root; CI runs as root).
# Both install what is missing first (tools/setup.sh).
# make install [DESTDIR=DIR]: the service (tools/install.sh), into DIR if given.

.PHONY: setup build demo test bench clean flatc install

setup:
	@sh tools/setup.sh

build: setup

demo: setup
	@node dist/tools/demo.js

test: setup
	@node --test --test-concurrency=1 --test-reporter=spec dist/test/

install: setup
	@DESTDIR="$(DESTDIR)" sh tools/install.sh

flatc:
	npm run flatc

clean:
	rm -rf build dist n2disk-data
