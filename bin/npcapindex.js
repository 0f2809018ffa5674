#!/usr/bin/env node
require("../dist/tools/npcapindex.js");
