#!/usr/bin/env node
require("../dist/tools/npcapmanage.js");
