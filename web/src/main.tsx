import { render } from "preact";
import { agentRpcUrl } from "./api/rpc-client.js";
import { createTokenStore } from "./api/token-store.js";
import { App } from "./app.js";
import "./styles.css";

render(<App rpcUrl={agentRpcUrl(location)} tokens={createTokenStore(sessionStorage)} />, document.getElementById("app")!);
