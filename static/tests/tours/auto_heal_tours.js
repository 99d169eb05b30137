import { registry } from "@web/core/registry";

/**
 * Auto-Heal's tours, run in Chromium by tests/test_tours.py (HttpCase.start_tour).
 * A JS error in the page fails them. Each starts where a person starts.
 */

const tours = registry.category("web_tour.tours");

/** An admin closes the loop: overview -> incident -> What to do -> plan -> approve -> done. */
tours.add("auto_heal_admin_loop", {
    url: "/odoo/auto-heal",
    steps: () => [
        {
            content: "The overview lists what needs attention, the stuck module first",
            trigger: ".o_auto_heal_attention_incident:contains('Module install, upgrade or removal stuck') .o_auto_heal_review",
            run: "click",
        },
        {
            content: "The incident says what to do, in words",
            trigger: ".o_auto_heal_what_to_do:contains('What to do by hand'):contains('Make sure no upgrade runs now')",
        },
        {
            content: "Its captured values are label and value",
            trigger: ".o_auto_heal_captures th:contains('Module')",
        },
        {
            content: "A fix is planned: review it",
            trigger: "button.o_auto_heal_review_fix",
            run: "click",
        },
        {
            content: "The plan says what changes",
            trigger: ".o_form_view div[name='plan']:contains('mail: to upgrade -> installed')",
        },
        {
            content: "Its target is in words",
            trigger: ".o_form_view div[name='target_label']:contains('Module states of mail')",
        },
        {
            content: "Every precondition holds: no red banner",
            trigger: ".o_form_view:not(:has(.o_auto_heal_precondition_banner:visible))",
        },
        {
            content: "Approve",
            trigger: "button.o_auto_heal_approve",
            run: "click",
        },
        {
            content: "Confirm",
            trigger: ".modal-footer button.btn-primary",
            run: "click",
        },
        {
            content: "It ran right after the approval, and the form shows it done",
            trigger: ".o_form_view .o_auto_heal_done:contains('its incident is resolved')",
        },
        {
            content: "The statusbar says Done",
            trigger: ".o_statusbar_status button.o_arrow_button_current:contains('Done')",
        },
        {
            content: "Back to the incident",
            trigger: ".o_form_view div[name='incident_id'] a, .o_form_view div[name='incident_id'] .o_form_uri",
            run: "click",
        },
        {
            content: "The incident is resolved",
            trigger: ".o_statusbar_status button.o_arrow_button_current:contains('Resolved')",
        },
    ],
});

/** A manager rejects a planned fix, saying why. */
tours.add("auto_heal_reject", {
    url: "/odoo/auto-heal",
    steps: () => [
        {
            content: "The waiting fix is in Needs attention",
            trigger: ".o_auto_heal_attention_run:contains('Reset stuck module states') .o_auto_heal_review",
            run: "click",
        },
        {
            content: "Reject",
            trigger: "button.o_auto_heal_reject",
            run: "click",
        },
        {
            content: "Say why",
            trigger: ".modal div[name='reason'] textarea",
            run: "edit Not during the month-end close",
        },
        {
            content: "Confirm the rejection",
            trigger: ".modal-footer button:contains('Reject')",
            run: "click",
        },
        {
            content: "The run is rejected, with the reason",
            trigger: ".o_form_view div[name='reject_reason']:contains('Not during the month-end close')",
        },
        {
            content: "Nothing to approve any more",
            trigger: ".o_form_view:not(:has(button.o_auto_heal_approve))",
        },
    ],
});

/** An Auto-Heal User reads incidents and plans but approves nothing. */
tours.add("auto_heal_user_reads_only", {
    url: "/odoo/auto-heal",
    steps: () => [
        {
            content: "The user sees the overview and its incidents",
            trigger: ".o_auto_heal_attention_incident:contains('Module install, upgrade or removal stuck') .o_auto_heal_review",
            run: "click",
        },
        {
            content: "What to do is there for the user too",
            trigger: ".o_auto_heal_what_to_do:contains('What to do by hand')",
        },
        {
            content: "No Acknowledge, Resolve or Ignore for a user",
            trigger: ".o_form_view:not(:has(button[name='action_acknowledge'])):not(:has(button[name='action_resolve']))",
        },
        {
            content: "The planned fix can be read",
            trigger: "button.o_auto_heal_review_fix",
            run: "click",
        },
        {
            content: "Its plan is there",
            trigger: ".o_form_view div[name='plan']:contains('mail: to upgrade -> installed')",
        },
        {
            content: "No Approve, Reject or Run Now for a user",
            trigger: ".o_form_view .o_statusbar_status:not(:has(.o_auto_heal_approve))",
            run() {
                const buttons = document.querySelectorAll(
                    ".o_auto_heal_approve, .o_auto_heal_reject, .o_auto_heal_run_now"
                );
                if (buttons.length) {
                    console.error(`an Auto-Heal User sees ${buttons.length} manager button(s)`);
                }
            },
        },
        {
            content: "Reporting",
            trigger: ".o_main_navbar .o_menu_sections button:contains('Reporting'), .o_main_navbar .o_menu_sections a:contains('Reporting')",
            run: "click",
        },
        {
            content: "Incidents over Time",
            trigger: ".dropdown-item:contains('Incidents over Time')",
            run: "click",
        },
        {
            content: "The graph (Odoo's lazily loaded view, coloured by severity) draws",
            trigger: ".o_graph_renderer canvas",
        },
    ],
});

/** A failed precondition: a red banner names it and what to do, and Approve is not offered;
 *  once the cause is acknowledged, the plan checked again lets the fix through. */
tours.add("auto_heal_precondition_banner", {
    url: "/odoo/auto-heal-fix-runs",
    steps: () => [
        {
            content: "Open the planned reactivation",
            trigger: ".o_data_row:contains('Reactivate a scheduled action') td.o_data_cell",
            run: "click",
        },
        {
            content: "A red banner names the failed precondition",
            trigger: ".o_auto_heal_precondition_banner:contains('the cause of the job')",
        },
        {
            content: "... and what to do",
            trigger: ".o_auto_heal_precondition_banner:contains('What to do'):contains('acknowledge')",
        },
        {
            content: "Approve is not offered",
            trigger: ".o_form_view:not(:has(button.o_auto_heal_approve))",
        },
        {
            content: "Open the parameters",
            trigger: ".o_notebook a.nav-link:contains('Parameters')",
            run: "click",
        },
        {
            content: "The cause is a real field, editable while the run waits",
            trigger: ".o_form_view div[name='param_cause'] input",
        },
        {
            content: "Go to the incident",
            trigger: ".o_form_view div[name='incident_id'] a, .o_form_view div[name='incident_id'] .o_form_uri",
            run: "click",
        },
        {
            content: "The cause is dealt with: acknowledge the incident",
            trigger: "button[name='action_acknowledge']",
            run: "click",
        },
        {
            content: "Acknowledged",
            trigger: ".o_statusbar_status button.o_arrow_button_current:contains('Acknowledged')",
        },
        {
            content: "Review the planned fix again",
            trigger: "button.o_auto_heal_review_fix",
            run: "click",
        },
        {
            content: "The plan was checked again: no banner, Approve is offered",
            trigger: ".o_form_view:not(:has(.o_auto_heal_precondition_banner:visible)) button.o_auto_heal_approve",
            run: "click",
        },
        {
            content: "Confirm",
            trigger: ".modal-footer button.btn-primary",
            run: "click",
        },
        {
            content: "The scheduled action is on again",
            trigger: ".o_form_view .o_auto_heal_done",
        },
    ],
});
