'use strict';
module.exports = require('./build/Release/greet_addon.node');
