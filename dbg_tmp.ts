import * as http2 from "node:http2";
import { startInProcess } from "./tests/support/in_process.ts";
import { create, toBinary } from "@bufbuild/protobuf";
import { RangeRequestSchema } from "./proto/gen/etcd/etcdserverpb/rpc_pb.ts";
const m = await startInProcess();
const s = http2.connect(m.clientUrl);
const req = s.request({ ":method": "POST", ":path": "/etcdserverpb.KV/Range", "content-type": "application/grpc", te: "trailers" });
req.on("error", (e) => console.log("req error", e.message));
req.on("response", (h) => console.log("response", h[":status"], h["grpc-status"]));
const closed = new Promise((r) => req.once("close", () => { console.log("closed", req.rstCode); r(null); }));
const msg = toBinary(RangeRequestSchema, create(RangeRequestSchema, { key: new TextEncoder().encode("a") }));
const f = new Uint8Array(5 + msg.length); new DataView(f.buffer).setUint32(1, msg.length); f.set(msg, 5);
req.write(f);
let i = 0;
for (; i < 1600 && !req.closed && !req.destroyed; i++) {
  if (!req.write(new Uint8Array(65536))) { console.log("wait drain at", i); await Promise.race([new Promise((r) => req.once("drain", r)), closed, new Promise((r) => setTimeout(r, 1000))]); }
}
console.log("loop done i=", i, "closed=", req.closed);
s.destroy(); await m.stop();
