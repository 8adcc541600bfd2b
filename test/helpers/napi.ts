/**
 * The C source of a Node-API addon exporting `version()`, which returns the string `call` gives
 * (a C expression, e.g. `zlibVersion()`), with `header` included: enough to ask a linked library
 * which copy of itself the addon really calls.
 */
export function versionAddon(header: string, call: string): string {
  return `
#include <node_api.h>
#include <${header}>
static napi_value version(napi_env env, napi_callback_info info) {
  napi_value out;
  napi_create_string_utf8(env, ${call}, NAPI_AUTO_LENGTH, &out);
  return out;
}
NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "version", NAPI_AUTO_LENGTH, version, NULL, &fn);
  napi_set_named_property(env, exports, "version", fn);
  return exports;
}
`;
}
