#!/usr/bin/env node
require("../dist/tools/npcapprintindex.js");
