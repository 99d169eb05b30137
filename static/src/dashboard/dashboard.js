import { Component, onMounted, onWillStart, onWillUnmount, useRef, useState } from "@odoo/owl";
import { loadBundle } from "@web/core/assets";
import { _t } from "@web/core/l10n/translation";
import { registry } from "@web/core/registry";
import { useService } from "@web/core/utils/hooks";
import { Layout } from "@web/search/layout";
import { standardActionServiceProps } from "@web/webclient/actions/action_service";
import { SEVERITY_COLORS } from "../js/severity_colors";

const MODEL = "auto_heal.overview";

/**
 * The Auto-Heal overview (/odoo/auto-heal): what needs a person first, then the
 * figures, the incidents per day by severity and the health rows. Everything
 * comes from one call, auto_heal.overview.get_dashboard_data.
 */
export class AutoHealDashboard extends Component {
    static template = "auto_heal.Dashboard";
    static components = { Layout };
    static props = { ...standardActionServiceProps };

    setup() {
        this.orm = useService("orm");
        this.action = useService("action");
        this.notification = useService("notification");
        this.chartRef = useRef("chart");
        this.chart = null;
        this.state = useState({ data: null, busy: false });
        onWillStart(async () => {
            await loadBundle("web.chartjs_lib");
            await this.load();
        });
        onMounted(() => this.renderChart());
        onWillUnmount(() => this.chart?.destroy());
    }

    async load() {
        this.state.data = await this.orm.call(MODEL, "get_dashboard_data", []);
    }

    async reload() {
        await this.load();
        this.renderChart();
    }

    get severityCards() {
        const open = this.state.data.kpis.open;
        return this.state.data.severities.map((severity) => ({
            severity,
            count: open[severity],
            label: {
                critical: _t("Critical"),
                high: _t("High"),
                medium: _t("Medium"),
                low: _t("Low"),
            }[severity],
        }));
    }

    renderChart() {
        const canvas = this.chartRef.el;
        if (!canvas || !this.state.data || !window.Chart) {
            return;
        }
        const { labels, series } = this.state.data.chart;
        const names = { critical: _t("Critical"), high: _t("High"), medium: _t("Medium"), low: _t("Low") };
        const datasets = this.state.data.severities.map((severity) => ({
            label: names[severity],
            data: series[severity],
            backgroundColor: SEVERITY_COLORS[severity],
            borderRadius: 3,
        }));
        this.chart?.destroy();
        this.chart = new window.Chart(canvas, {
            type: "bar",
            data: { labels, datasets },
            options: {
                animation: false,
                maintainAspectRatio: false,
                scales: {
                    x: { stacked: true },
                    y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } },
                },
                plugins: { legend: { position: "bottom" } },
            },
        });
    }

    async openIncidents(severity) {
        const action = await this.orm.call(MODEL, "action_open_incidents", [], { severity });
        this.action.doAction(action);
    }

    async openAction(method) {
        this.action.doAction(await this.orm.call(MODEL, method, []));
    }

    async review(row) {
        const action = await this.orm.call(MODEL, "action_open_review", [row.kind, row.id]);
        this.action.doAction(action);
    }

    openRecord(model, id) {
        this.action.doAction({
            type: "ir.actions.act_window",
            res_model: model,
            res_id: id,
            views: [[false, "form"]],
            target: "current",
        });
    }

    async scan(method) {
        this.state.busy = true;
        try {
            await this.orm.call(MODEL, method, []);
            const label =
                method === "action_scan_logs" ? _t("The logs were scanned.") : _t("The database was scanned.");
            this.notification.add(label, { type: "success" });
            await this.reload();
        } finally {
            this.state.busy = false;
        }
    }

    statusClass(status) {
        return { ok: "text-bg-success", warning: "text-bg-warning", critical: "text-bg-danger" }[status] || "text-bg-light";
    }
}

registry.category("actions").add("auto_heal_dashboard", AutoHealDashboard);
