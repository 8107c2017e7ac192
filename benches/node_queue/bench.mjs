// The queue benchmark's comparison (see ../queue.rs): graphile-worker, a
// widely used Node.js job queue on PostgreSQL that, like xtract, wakes on
// LISTEN/NOTIFY and claims with SKIP LOCKED. Measured as xtract is, against
// the same server in the same run: pickup latency (job inserted to job
// started, 1000 jobs one at a time, 4 slots per worker) and throughput
// (20,000 queued jobs, 32 slots per worker, from the workers' start until
// the last job is recorded complete), with a task that does nothing.
//
//     node bench.mjs postgres://postgres@127.0.0.1:5432/bench_node
//
// The Rust benchmark installs the locked dependencies (`npm ci`) and runs
// this; it prints lines in the same form as the Rust side.

import { EventEmitter } from "node:events";
import { run, runMigrations, Logger } from "graphile-worker";
import pg from "pg";

const connectionString = process.argv[2];
if (!connectionString) {
  console.error("usage: node bench.mjs <postgres url>");
  process.exit(2);
}
const quiet = new Logger(() => () => {});
const common = {
  connectionString,
  noHandleSignals: true,
  // The fallback poll; LISTEN wakes the workers.
  pollInterval: 5000,
  logger: quiet,
};

const percentile = (sorted, p) => sorted[Math.round((sorted.length - 1) * p)];
const ms = (ns) => (Number(ns) / 1e6).toFixed(2);

async function startWorkers(n, concurrency, task, events = new EventEmitter()) {
  const runners = [];
  for (let i = 0; i < n; i++) {
    runners.push(await run({ ...common, concurrency, events, taskList: { noop: task } }));
  }
  return runners;
}

async function stopAll(runners) {
  await Promise.all(runners.map((r) => r.stop()));
}

async function latency(client, workers, samples) {
  await client.query("DELETE FROM graphile_worker._private_jobs");
  let waiting = null;
  const runners = await startWorkers(workers, 4, async (payload) => {
    const at = process.hrtime.bigint();
    if (waiting && waiting.i === payload.i) waiting.resolve(at);
  });
  // Until every worker listens (as the Rust side waits for LISTEN).
  for (;;) {
    const { rows } = await client.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query ILIKE 'LISTEN%jobs%'",
    );
    if (rows[0].n >= workers) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const pickups = [];
  for (let i = 0; i < samples; i++) {
    const started = new Promise((resolve) => {
      waiting = { i, resolve };
    });
    const t0 = process.hrtime.bigint();
    await client.query("SELECT graphile_worker.add_job('noop', json_build_object('i', $1::int))", [i]);
    const at = await started;
    pickups.push(at - t0);
  }
  await stopAll(runners);
  pickups.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  console.log(
    `graphile-worker pickup latency, ${workers} worker(s), ${samples} jobs one at a time: ` +
      `p50 ${ms(percentile(pickups, 0.5))} ms, p99 ${ms(percentile(pickups, 0.99))} ms, ` +
      `max ${ms(pickups[pickups.length - 1])} ms`,
  );
}

async function throughput(client, workers, jobs) {
  await client.query("DELETE FROM graphile_worker._private_jobs");
  await client.query(
    "SELECT graphile_worker.add_job('noop', json_build_object('i', i)) FROM generate_series(1, $1::int) AS i",
    [jobs],
  );
  await client.query("ANALYZE graphile_worker._private_jobs");
  let done = 0;
  let finish;
  const finished = new Promise((r) => (finish = r));
  // Listening before the first worker starts: no completion is missed.
  const events = new EventEmitter();
  events.on("job:complete", () => {
    done += 1;
    if (done === jobs) finish(process.hrtime.bigint());
  });
  const t0 = process.hrtime.bigint();
  const runners = await startWorkers(workers, 32, async () => {}, events);
  const t1 = await finished;
  await stopAll(runners);
  const secs = Number(t1 - t0) / 1e9;
  console.log(
    `graphile-worker throughput, ${workers} worker(s) x 32 slots, ${jobs} queued jobs: ` +
      `${Math.round(jobs / secs)} jobs/s (${secs.toFixed(2)} s)`,
  );
}

const client = new pg.Client({ connectionString });
await client.connect();
await runMigrations({ connectionString, logger: quiet });
for (const workers of [1, 4]) await latency(client, workers, 1000);
for (const workers of [1, 4]) await throughput(client, workers, 20000);
await client.end();
