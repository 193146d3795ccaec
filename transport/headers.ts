/**
 * What peers tell each other in HTTP headers (etcd's rafthttp names and formats): who sends,
 * to whom, in which cluster, at which version, and where the sender can be reached.
 *
 * @module
 */

/** Header names, as etcd spells them. */
export const PeerHeader = {
  clusterId: "X-Etcd-Cluster-ID",
  raftTo: "X-Raft-To",
  serverFrom: "X-Server-From",
  peerUrls: "X-PeerURLs",
  serverVersion: "X-Server-Version",
  minClusterVersion: "X-Min-Cluster-Version",
} as const;

/** The server version this transport announces unless told otherwise (etcd 3.4's wire). */
export const defaultServerVersion = "3.4.23";
/** The oldest cluster version this transport works with (etcd 3.4's MinClusterVersion). */
export const defaultMinClusterVersion = "3.0.0";
/** What etcd assumes of a peer that sends no version header. */
const versionOfUnlabelledPeer = "2.0.0";

/** How the local member introduces itself to peers. */
export interface PeerIdentity {
  /** The local member's ID. */
  localId: bigint;
  /** The cluster's ID; requests from another cluster are refused. */
  clusterId: bigint;
  /** The local member's advertised peer URLs, sent so a new peer can learn them. */
  localUrls: readonly string[];
  /** Announced in `X-Server-Version`. */
  serverVersion: string;
  /** Announced in `X-Min-Cluster-Version`. */
  minClusterVersion: string;
}

/** Formats a member or cluster ID as etcd does: lower-case hex without leading zeros. */
export function formatId(id: bigint): string {
  return id.toString(16);
}

const hexId = /^[0-9a-fA-F]{1,16}$/;

/** Parses an ID written by {@linkcode formatId}; null when it is not a 64-bit hex number. */
export function parseId(text: string | null): bigint | null {
  if (text === null || !hexId.test(text)) return null;
  return BigInt(`0x${text}`);
}

/** The headers every request to a peer carries; `to` adds `X-Raft-To`. */
export function peerRequestHeaders(identity: PeerIdentity, to?: bigint): Headers {
  const headers = new Headers({
    [PeerHeader.serverFrom]: formatId(identity.localId),
    [PeerHeader.serverVersion]: identity.serverVersion,
    [PeerHeader.minClusterVersion]: identity.minClusterVersion,
    [PeerHeader.clusterId]: formatId(identity.clusterId),
  });
  if (to !== undefined) headers.set(PeerHeader.raftTo, formatId(to));
  if (identity.localUrls.length > 0) headers.set(PeerHeader.peerUrls, identity.localUrls.join(","));
  return headers;
}

/** Error bodies etcd's peer handlers answer with (clients match some of them). */
export const PeerErrorText = {
  clusterIdMismatch: "cluster ID mismatch",
  incompatibleVersion: "incompatible version",
  toMismatch: "to field mismatch",
  removedMember: "removed member",
  removedSender: "cannot process message from removed member",
  senderNotFound: "error sender not found",
  invalidPath: "invalid path",
  invalidFrom: "invalid from",
  methodNotAllowed: "Method Not Allowed",
  notFound: "404 page not found",
  readFailed: "error reading raft message",
  unmarshalFailed: "error unmarshalling raft message",
  wrongSnapshotType: "wrong raft message type",
  processFailed: "error processing raft message",
  bodyTooLarge: "request body too large",
} as const;

function majorMinor(version: string): [number, number] | null {
  const match = /^(\d+)\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.+-]*)?$/.exec(version);
  if (match === null) return null;
  return [Number(match[1]), Number(match[2])];
}

function compareMajorMinor(a: [number, number], b: [number, number]): number {
  return a[0] !== b[0] ? a[0] - b[0] : a[1] - b[1];
}

/**
 * Checks a peer request's version and cluster headers the way etcd does, in etcd's order:
 * versions first (the peer must run at least our minimum cluster version, and must not need a
 * cluster newer than we are; only major.minor count), then the cluster ID, compared as text.
 * Returns the 412 body to answer with, or null when the request may proceed. Unlike etcd, a
 * malformed version header is an incompatible version, not a crash.
 */
export function checkCompatibility(
  headers: Headers,
  identity: PeerIdentity,
): string | null {
  const remoteServer = majorMinor(
    headers.get(PeerHeader.serverVersion) ?? versionOfUnlabelledPeer,
  );
  const remoteMinCluster = majorMinor(
    headers.get(PeerHeader.minClusterVersion) ?? versionOfUnlabelledPeer,
  );
  const localServer = majorMinor(identity.serverVersion);
  const localMinCluster = majorMinor(identity.minClusterVersion);
  if (
    remoteServer === null || remoteMinCluster === null || localServer === null ||
    localMinCluster === null ||
    compareMajorMinor(remoteServer, localMinCluster) < 0 ||
    compareMajorMinor(remoteMinCluster, localServer) > 0
  ) {
    return PeerErrorText.incompatibleVersion;
  }
  if (headers.get(PeerHeader.clusterId) !== formatId(identity.clusterId)) {
    return PeerErrorText.clusterIdMismatch;
  }
  return null;
}

/** The peer URLs a request announces in `X-PeerURLs`, or an empty list. */
export function announcedPeerUrls(headers: Headers): string[] {
  const value = headers.get(PeerHeader.peerUrls);
  if (value === null || value === "") return [];
  return value.split(",").map((u) => u.trim()).filter((u) => u !== "");
}
