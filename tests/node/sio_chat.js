// A socket.io 4.x chat room for the tests (tests/test_sio.py) and tests/bench/artillery_sio.py.
//
//   node tests/node/sio_chat.js [--ports N] [--event NAME] [--namespace /NAME]
//                               [--drop-port K --drop-every N] [--exclude-sender]
//
// Listens on N (default 1) free loopback ports, one socket.io server over all of them, and
// prints "PORTS p1 [p2 ...]" once listening. Every client joins the room "room" of its
// namespace ("/" and, if given, --namespace); an event named --event (default "message")
// goes to every client of the room, the sender included (io.to(room).emit), or with
// --exclude-sender to the others only (socket.to(room).emit). An emit that asks for an ack
// gets one: {"ok": true}.
//
// --drop-port K --drop-every N: the clients that came in on the K-th port (from 0) miss every
// N-th message sent to them (counted per client from 1); the others get every message.
"use strict";
const http = require("http");
const { Server } = require("socket.io");

function flag(name, dflt) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const nPorts = Number(flag("--ports", "1"));
const event = flag("--event", "message");
const extraNs = flag("--namespace", "");
const dropPort = Number(flag("--drop-port", "-1"));
const dropEvery = Number(flag("--drop-every", "0"));
const excludeSender = process.argv.includes("--exclude-sender");

const io = new Server({ maxHttpBufferSize: 1e6, serveClient: false });
const servers = [];
const portIndex = new Map(); // local port -> its index

function room(nsp) {
  nsp.on("connection", (socket) => {
    socket.join("room");
    socket.data.index = portIndex.get(socket.request.socket.localPort);
    socket.data.count = 0;
    socket.on(event, (data, ack) => {
      if (dropEvery > 0) {
        for (const s of nsp.sockets.values()) {
          if (excludeSender && s === socket) continue;
          s.data.count += 1;
          if (s.data.index === dropPort && s.data.count % dropEvery === 0) continue;
          s.emit(event, data);
        }
      } else if (excludeSender) {
        socket.to("room").emit(event, data);
      } else {
        nsp.to("room").emit(event, data);
      }
      if (typeof ack === "function") ack({ ok: true });
    });
  });
}

room(io.of("/"));
if (extraNs) room(io.of(extraNs));

let listening = 0;
for (let k = 0; k < nPorts; k++) {
  const srv = http.createServer();
  servers.push(srv);
  srv.listen(0, "127.0.0.1", () => {
    portIndex.set(srv.address().port, k);
    io.attach(srv);
    listening += 1;
    if (listening === nPorts) {
      console.log("PORTS " + servers.map((s) => s.address().port).join(" "));
    }
  });
}
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
