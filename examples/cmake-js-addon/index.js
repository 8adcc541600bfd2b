'use strict';
// cmake-js puts the addon in build/Release (build/Debug with --debug).
module.exports = require('./build/Release/greet_addon.node');
