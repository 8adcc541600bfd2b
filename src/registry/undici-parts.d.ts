// Types for the parts of undici that http.ts requires alone (undici's types cover only its index):
// each module exports what the index exports under the same name.
declare module 'undici/lib/dispatcher/agent.js' {
  import { Agent } from 'undici';
  export = Agent;
}

declare module 'undici/lib/dispatcher/env-http-proxy-agent.js' {
  import { EnvHttpProxyAgent } from 'undici';
  export = EnvHttpProxyAgent;
}

declare module 'undici/lib/dispatcher/dispatcher.js' {
  import { Dispatcher } from 'undici';
  export = Dispatcher;
}

declare module 'undici/lib/api/index.js' {
  /** The request methods the index assigns to Dispatcher.prototype. */
  const api: Record<string, unknown>;
  export = api;
}
