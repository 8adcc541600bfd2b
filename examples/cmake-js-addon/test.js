'use strict';
const assert = require('node:assert');
const greet = require('./index.js');

assert.strictEqual(greet.add(2, 3), 5);
console.log(`greet ${greet.version()}: add(2, 3) = ${greet.add(2, 3)}`);
