import { registry } from "@web/core/registry";
import { BadgeField, badgeField } from "@web/views/fields/badge/badge_field";

/**
 * Badges with Auto-Heal's fixed palettes (static/src/scss/auto_heal.scss): one
 * colour per severity, and other colours for the states of incidents and fix
 * runs, so that a state badge never looks like a severity badge.
 */
export class AutoHealSeverityBadge extends BadgeField {
    get classFromDecoration() {
        const value = this.props.record.data[this.props.name];
        return value ? `o_auto_heal_badge_sev_${value}` : "";
    }
}

export class AutoHealStateBadge extends BadgeField {
    get classFromDecoration() {
        const value = this.props.record.data[this.props.name];
        return value ? `text-bg-ah_${value}` : "";
    }
}

registry.category("fields").add("auto_heal_severity", { ...badgeField, component: AutoHealSeverityBadge });
registry.category("fields").add("auto_heal_state", { ...badgeField, component: AutoHealStateBadge });
