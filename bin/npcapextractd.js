#!/usr/bin/env node
require("../dist/extract/service.js");
