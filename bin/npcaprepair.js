#!/usr/bin/env node
require("../dist/tools/npcaprepair.js");
