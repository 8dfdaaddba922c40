// Latency baseline: one D1 statement per request, the same SQL the Rust Worker runs.
const UPSERT_CONTROLLER = `INSERT INTO controllers (controller_id, host, role, priority, status, version, started_at, metadata_json, first_seen_at, last_heartbeat_at)
  VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
  ON CONFLICT (controller_id) DO UPDATE SET host = excluded.host, role = excluded.role, priority = excluded.priority,
    status = excluded.status, version = excluded.version, started_at = excluded.started_at,
    metadata_json = excluded.metadata_json, last_heartbeat_at = excluded.last_heartbeat_at
  RETURNING *`;

const CLAIM_TASKS = `UPDATE tasks SET status = 'planning', claimed_by = ?1, claim_term = ?2, claimed_at = ?3, updated_at = ?3
  WHERE task_id IN (
      SELECT t.task_id FROM tasks t WHERE t.status = 'queued'
        AND (t.target_host IS NULL OR EXISTS (
             SELECT 1 FROM controllers c WHERE c.host = t.target_host AND c.last_heartbeat_at >= ?3 - ?5))
      ORDER BY t.priority DESC, t.created_at, t.task_id LIMIT ?4)
    AND status = 'queued'
    AND (SELECT mode FROM system_state WHERE state_key = 'global') = 'running'
    AND EXISTS (SELECT 1 FROM leader_lease WHERE lease_name = 'global' AND holder_id = ?1 AND term = ?2 AND lease_expires_at > ?3)
  RETURNING *`;

const SEED_LEASE = `INSERT INTO leader_lease (lease_name, holder_id, holder_host, term, lease_expires_at, renewed_at, last_operation)
  VALUES ('global', ?1, 'mini', 1, ?2, ?2, 'acquire')
  ON CONFLICT (lease_name) DO UPDATE SET holder_id = ?1, term = 1, lease_expires_at = ?2`;

const SEED_TASK = `INSERT INTO tasks (task_id, repo, task_type, title, goal, priority, status, constraints_json, acceptance_json,
  metadata_json, base_ref, branch_name, created_at, updated_at)
  VALUES (?1, '/r', 'shell', 't', 'true', 50, 'queued', '{}', '[]', '{}', 'HEAD', 'baa/' || ?1, ?2, ?2)`;

const now = () => Math.floor(Date.now() / 1000);

export default {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    if (pathname === "/healthz") return new Response("ok");
    const body = request.method === "POST" ? await request.json() : {};
    if (pathname === "/v1/controllers/heartbeat") {
      const row = await env.CONTROL_DB.prepare(UPSERT_CONTROLLER)
        .bind(body.controller_id, body.host, body.role, body.priority, body.status, null, null, "{}", now())
        .first();
      return Response.json({ ok: true, data: { controller: row } });
    }
    if (pathname === "/v1/tasks/claim") {
      const { results } = await env.CONTROL_DB.prepare(CLAIM_TASKS)
        .bind(body.controller_id, body.term, now(), body.limit ?? 1, 30)
        .all();
      return Response.json({ ok: true, data: { tasks: results } });
    }
    if (pathname === "/seed") {
      const statements = [env.CONTROL_DB.prepare(SEED_LEASE).bind(body.controller_id, now() + 3600)];
      for (let index = 0; index < body.tasks; index++) {
        statements.push(env.CONTROL_DB.prepare(SEED_TASK).bind(`task_js_${String(index).padStart(6, "0")}`, now()));
      }
      await env.CONTROL_DB.batch(statements);
      return Response.json({ ok: true });
    }
    return Response.json({ ok: false, error: "route_not_found" }, { status: 404 });
  },
};
