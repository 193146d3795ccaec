/**
 * startServer: the composition root. Opens the member's storage and raft, then binds the
 * client URLs (gRPC + HTTP on one port each) and the peer URLs.
 *
 * @module
 */
import { Logger } from "../internal/logger.ts";
import { type Config, ConfigError, resolveListenAddress } from "./config.ts";
import { EtcdServer } from "./etcd_server.ts";
import { clientApp } from "./http_app.ts";
import { formatId } from "./ids.ts";
import { ClientListener } from "./listener.ts";
import { membersResponse } from "./join.ts";
import { versions } from "./version.ts";

/** A running member with its listeners. */
export interface Server {
  readonly etcd: EtcdServer;
  /** The bound client addresses, e.g. `http://127.0.0.1:2379`. */
  readonly clientUrls: string[];
  /** The bound peer addresses. */
  readonly peerUrls: string[];
  /** Resolves when the server stops by itself (fatal error). */
  readonly finished: Promise<void>;
  /** Stops listeners, then the member; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Refuses configurations this version cannot honour rather than silently doing less: TLS
 * (serving plain text to someone who asked for TLS would be worse than not starting) and
 * clusters of more than one member (raft replication is the next milestone).
 */
function checkSupported(config: Config): void {
  const urls = [...config.listenClientUrls, ...config.listenPeerUrls];
  const tls = [config.clientTls, config.peerTls];
  if (
    urls.some((u) => u.startsWith("https:")) ||
    tls.some((t) => t.certFile || t.keyFile || t.autoTls || t.clientCertAuth)
  ) {
    throw new ConfigError("TLS is not supported yet: use http:// URLs and no certificate flags");
  }
}

/** Starts a member from a parsed configuration. */
export async function startServer(config: Config, logger = new Logger()): Promise<Server> {
  checkSupported(config);
  const log = logger.with({ name: config.name });
  const etcd = await EtcdServer.start(config);
  log.info("started member", {
    "member-id": formatId(etcd.memberId),
    "cluster-id": formatId(etcd.clusterId),
    "data-dir": config.dataDir,
  });
  const app = clientApp(etcd);
  const clients: ClientListener[] = [];
  const peers: Deno.HttpServer<Deno.NetAddr>[] = [];
  let stopping: Promise<void> | null = null;
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => (finish = resolve));

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      // Peer streams are long-lived responses: end them, or the peer listener never closes.
      await etcd.stopPeerTraffic();
      await Promise.allSettled([
        ...clients.map((l) => l.close()),
        ...peers.map((p) => p.shutdown()),
      ]);
      await etcd.stop();
      finish();
    })();
    return stopping;
  };
  etcd.onFatal = (err) => {
    log.error("member stopped after a fatal error", { error: String(err) });
    void stop();
  };

  try {
    // Peers first: the member needs its cluster to elect a leader and publish itself, and
    // like etcd it serves clients only once published.
    for (const url of config.listenPeerUrls) {
      const { hostname, port } = resolveListenAddress(url);
      peers.push(servePeer(etcd, hostname, port));
    }
    await etcd.ready;
    if (stopping === null) {
      for (const url of config.listenClientUrls) {
        const { hostname, port } = resolveListenAddress(url);
        clients.push(await ClientListener.listen(etcd, app, hostname, port));
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const clientUrls = clients.map((l) => `http://${l.address.hostname}:${l.address.port}`);
  const peerUrls = peers.map((p) => `http://${p.addr.hostname}:${p.addr.port}`);
  log.info("ready to serve client requests", { "client-urls": clientUrls, "peer-urls": peerUrls });
  return { etcd, clientUrls, peerUrls, finished, stop };
}

/**
 * The peer port: raft's transport endpoints (`/raft...`), the member list a joining member
 * reads (`/members`) and `/version`.
 */
function servePeer(
  etcd: EtcdServer,
  hostname: string,
  port: number,
): Deno.HttpServer<Deno.NetAddr> {
  const raft = etcd.peerHandler;
  return Deno.serve({ hostname, port, onListen: () => {} }, (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/version") return Response.json(versions);
    if (path === "/members") {
      if (req.method !== "GET") return new Response("Method Not Allowed\n", { status: 405 });
      return membersResponse(etcd.clusterId, etcd.members);
    }
    if (path === "/raft" || path.startsWith("/raft/")) return raft(req);
    if (path === "/leases" || path === "/leases/internal") return etcd.serveLeaseForward(req);
    return new Response("404 page not found\n", { status: 404 });
  });
}
