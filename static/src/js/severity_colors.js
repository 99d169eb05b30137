/**
 * One colour per severity, the same in every chart and badge of Auto-Heal:
 * Bootstrap's danger, warning, info and secondary. The state badges use other
 * colours (static/src/scss/auto_heal.scss), so a state never looks like a severity.
 */
export const SEVERITY_COLORS = {
    critical: "#dc3545",
    high: "#ffc107",
    medium: "#0dcaf0",
    low: "#6c757d",
};
