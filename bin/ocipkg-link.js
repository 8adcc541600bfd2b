#!/usr/bin/env node
import { main } from '../dist/cli/ocipkg-link.js';

await main(process.argv.slice(2));
