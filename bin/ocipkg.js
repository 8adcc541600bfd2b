#!/usr/bin/env node
import { main } from '../dist/cli/ocipkg.js';

await main(process.argv.slice(2));
