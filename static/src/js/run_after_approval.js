import { registry } from "@web/core/registry";

/**
 * After Approve: the approval was committed by the request that returned this
 * action; the approved Odoo-level fix runs now, in a request of its own, and the
 * form reloads with its outcome. Odoo runs no cron while a module waits in
 * "to upgrade", which is the very thing some fixes repair: nobody has to find
 * Run Now. If this request fails, the "run fixes" job still runs the fix.
 */
async function runAfterApproval(env, action) {
    const runIds = action.params?.run_ids || [];
    return await env.services.orm.call("auto_heal.fix.run", "action_run_approved_now", [runIds]);
}

registry.category("actions").add("auto_heal_run_after_approval", runAfterApproval);
