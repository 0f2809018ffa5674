#!/usr/bin/env node
require("../dist/tools/npcapdecompress.js");
