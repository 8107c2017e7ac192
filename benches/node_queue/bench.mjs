// The queue benchmark's comparison (see ../queue/main.rs): graphile-worker, a
// widely used Node.js job queue on PostgreSQL that, like xtract, wakes on
// LISTEN/NOTIFY and claims with SKIP LOCKED, with a task that does nothing.
//
//     node bench.mjs postgres://postgres@127.0.0.1:5432/bench_node
//
// It takes commands from the Rust benchmark, one JSON object a line on stdin,
// and answers each with one JSON line on stdout, so that the Rust side can
// alternate rounds of both queues in one run and compute every figure the
// same way:
//
//   {"cmd":"pickup","workers":1,"concurrency":4,"samples":200,"gap_ms":20}
//       → {"pickup_us":[...]}: for each job, from add_job's return (its
//         commit) to the task's start, one job at a time, gap_ms between
//   {"cmd":"throughput","workers":1,"concurrency":32,"jobs":20000}
//       → {"secs":...}: queued with one statement, then from the workers'
//         start to the last completion
//   {"cmd":"burst","jobs":10000}
//       → {"secs":...}: add_jobs of that many jobs in one statement, rolled
//         back
//   {"cmd":"dead_rows"} → {"n_dead_tup":...} of graphile's jobs table
//   {"cmd":"quit"}

import { EventEmitter } from "node:events";
import readline from "node:readline";
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

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function pickup(client, { workers, concurrency, samples, gap_ms }) {
  await client.query("DELETE FROM graphile_worker._private_jobs");
  let waiting = null;
  const runners = await startWorkers(workers, concurrency, async (payload) => {
    const at = process.hrtime.bigint();
    if (waiting && waiting.i === payload.i) waiting.resolve(at);
  });
  // Until every worker listens (as the Rust side waits for LISTEN).
  for (;;) {
    const { rows } = await client.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%jobs%'",
    );
    if (rows[0].n >= workers) break;
    await sleep(20);
  }
  const pickups = [];
  for (let i = 0; i < samples; i++) {
    const started = new Promise((resolve) => {
      waiting = { i, resolve };
    });
    await client.query("SELECT graphile_worker.add_job('noop', json_build_object('i', $1::int))", [i]);
    const committed = process.hrtime.bigint();
    const at = await started;
    // The task may start before the client has read add_job's reply.
    pickups.push(at > committed ? Number(at - committed) / 1e3 : 0);
    await sleep(gap_ms);
  }
  await stopAll(runners);
  return { pickup_us: pickups };
}

async function throughput(client, { workers, concurrency, jobs }) {
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
  const runners = await startWorkers(workers, concurrency, async () => {}, events);
  const t1 = await finished;
  await stopAll(runners);
  return { secs: Number(t1 - t0) / 1e9 };
}

async function burst(client, { jobs }) {
  await client.query("BEGIN");
  const t0 = process.hrtime.bigint();
  await client.query(
    `SELECT graphile_worker.add_jobs(array(
       SELECT ('noop', json_build_object('i', i), null, null, null, null, null, null)::graphile_worker.job_spec
       FROM generate_series(1, $1::int) AS i))`,
    [jobs],
  );
  const t1 = process.hrtime.bigint();
  await client.query("ROLLBACK");
  return { secs: Number(t1 - t0) / 1e9 };
}

async function deadRows(client) {
  const { rows } = await client.query(
    "SELECT n_dead_tup::int AS n FROM pg_stat_user_tables WHERE relid = 'graphile_worker._private_jobs'::regclass",
  );
  return { n_dead_tup: rows[0].n };
}

const client = new pg.Client({ connectionString });
await client.connect();
await runMigrations({ connectionString, logger: quiet });
console.log(JSON.stringify({ ready: true }));
const commands = readline.createInterface({ input: process.stdin });
for await (const line of commands) {
  const c = JSON.parse(line);
  let answer;
  try {
    switch (c.cmd) {
      case "pickup":
        answer = await pickup(client, c);
        break;
      case "throughput":
        answer = await throughput(client, c);
        break;
      case "burst":
        answer = await burst(client, c);
        break;
      case "dead_rows":
        answer = await deadRows(client);
        break;
      case "quit":
        await client.end();
        process.exit(0);
      default:
        answer = { error: `unknown command ${c.cmd}` };
    }
  } catch (e) {
    answer = { error: String(e) };
  }
  console.log(JSON.stringify(answer));
}
await client.end();
