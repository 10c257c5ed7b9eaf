#!/usr/bin/env node
// A leader-elected "service" on a peer library, for the handover benchmark
// (test/bench/handover.py): the same events as handover_service.c.
//
//   node peer.js KIND DSN LOCKNAME EVENTS TAG
//
// KIND: advisory-lock     npm advisory-lock: mutex.lock() waits (pg_advisory_lock on a
//                         connection of its own); SIGTERM: unlock, exit.
//       pg-pubsub         npm @imqueue/pg-pubsub: singleListener, listen(LOCKNAME); the
//                         'listen' event means this process holds the channel lock; the
//                         library's own SIGTERM handler releases it (and exits within 1 s).
// Appends to EVENTS: "ready TAG NS" once it waits (pg-pubsub; the others are seen
// waiting in pg_stat_activity), "start TAG NS PID PGID - 0" the moment it leads,
// "exit TAG NS" when SIGTERM arrives (it stops leading then). NS: CLOCK_MONOTONIC.
"use strict";
const fs = require("fs");

const [kind, dsn, lockName, eventsPath, tag] = process.argv.slice(2);
if (!tag) {
  console.error("usage: peer.js advisory-lock|pg-pubsub DSN LOCKNAME EVENTS TAG");
  process.exit(2);
}
const events = fs.openSync(eventsPath, "a");
const monotonicNs = () => process.hrtime.bigint(); // CLOCK_MONOTONIC on Linux
const event = (line) => fs.writeSync(events, line + "\n");
let leading = false;

function lead() {
  if (leading) return;
  leading = true;
  event(`start ${tag} ${monotonicNs()} ${process.pid} ${process.pid} - 0`);
}

async function advisoryLock() {
  const advisoryLock = require("advisory-lock").default;
  const mutex = advisoryLock(dsn)(lockName);
  let unlock = null;
  process.on("SIGTERM", async () => {
    event(`exit ${tag} ${monotonicNs()}`);
    if (unlock) await unlock();
    process.exit(0);
  });
  unlock = await mutex.lock();
  lead();
}

async function pgPubSub() {
  const { PgPubSub } = require("@imqueue/pg-pubsub");
  process.on("SIGTERM", () => event(`exit ${tag} ${monotonicNs()}`)); // (after the library's)
  const pubSub = new PgPubSub({ connectionString: dsn, singleListener: true });
  pubSub.on("listen", (channel) => {
    if (channel === lockName) lead();
  });
  await pubSub.connect();
  await pubSub.listen(lockName);
  event(`ready ${tag} ${monotonicNs()}`);
}

const run = { "advisory-lock": advisoryLock, "pg-pubsub": pgPubSub }[kind];
if (!run) {
  console.error(`unknown kind ${kind}`);
  process.exit(2);
}
run().catch((err) => {
  console.error(err);
  process.exit(1);
});
