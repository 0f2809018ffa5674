#!/usr/bin/env node
require("../dist/extract/main.js");
