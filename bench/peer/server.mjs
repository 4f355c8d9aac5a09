// The durable Probot-style peer Forgehand's intake is measured against: @octokit/webhooks verifies
// each delivery's signature, better-sqlite3 stores it (WAL, synchronous=FULL) before the 202.
// It serves `/metrics` with an always-empty inbox so examples/loadgen.rs can drive it unchanged.
import http from "node:http";
import { Webhooks } from "@octokit/webhooks";
import Database from "better-sqlite3";

const port = Number(process.env.PEER_PORT ?? 2091);
const secret = process.env.PEER_SECRET ?? "bench";
const db = new Database(process.env.PEER_DB ?? "peer.db");
db.pragma("journal_mode = WAL");
db.pragma("synchronous = FULL");
db.exec(`CREATE TABLE IF NOT EXISTS deliveries (
  id TEXT PRIMARY KEY, event TEXT NOT NULL, payload TEXT NOT NULL, received_at INTEGER NOT NULL)`);
const insert = db.prepare("INSERT OR IGNORE INTO deliveries VALUES (?, ?, ?, ?)");
const webhooks = new Webhooks({ secret });

http
  .createServer((req, res) => {
    if (req.method === "GET" && req.url === "/metrics") {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("forgehand_inbox_pending 0\n");
      return;
    }
    if (req.method !== "POST" || req.url !== "/webhooks/github") {
      res.writeHead(404).end();
      return;
    }
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const signature = req.headers["x-hub-signature-256"] ?? "";
      try {
        if (!(await webhooks.verify(body, signature))) {
          res.writeHead(401).end();
          return;
        }
        JSON.parse(body);
        insert.run(req.headers["x-github-delivery"], req.headers["x-github-event"], body, Date.now());
        res.writeHead(202).end();
      } catch (e) {
        res.writeHead(400).end(String(e));
      }
    });
  })
  .listen(port, "127.0.0.1");
