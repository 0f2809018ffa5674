#!/usr/bin/env node
require("../dist/recorder/main.js");
