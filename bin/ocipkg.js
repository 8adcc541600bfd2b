#!/usr/bin/env node
import { main } from '../dist/bundle/ocipkg.js';

await main(process.argv.slice(2));
