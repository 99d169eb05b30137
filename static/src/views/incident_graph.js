import { registry } from "@web/core/registry";
import { graphView } from "@web/views/graph/graph_view";
import { GraphRenderer } from "@web/views/graph/graph_renderer";
import { SEVERITY_COLORS } from "../js/severity_colors";

/**
 * The incidents' graph view: a dataset per severity gets that severity's colour
 * (Odoo's own graph picks colours by position, so "Critical" could be blue).
 */
export class AutoHealIncidentGraphRenderer extends GraphRenderer {
    severityOf(label) {
        const selection = this.model.metaData.fields.severity?.selection || [];
        const found = selection.find(([, name]) => name === label);
        return found ? found[0] : null;
    }

    recolour(data, key) {
        for (const dataset of data.datasets || []) {
            const severity = this.severityOf(dataset.label);
            if (severity && SEVERITY_COLORS[severity]) {
                dataset[key] = SEVERITY_COLORS[severity];
                if (key === "borderColor") {
                    dataset.pointBackgroundColor = SEVERITY_COLORS[severity];
                }
            }
        }
        return data;
    }

    getBarChartData() {
        return this.recolour(super.getBarChartData(), "backgroundColor");
    }

    getLineChartData() {
        return this.recolour(super.getLineChartData(), "borderColor");
    }
}

export const autoHealIncidentGraphView = {
    ...graphView,
    Renderer: AutoHealIncidentGraphRenderer,
};

registry.category("views").add("auto_heal_incident_graph", autoHealIncidentGraphView);
