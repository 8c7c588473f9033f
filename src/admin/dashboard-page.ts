export const DASHBOARD_HTML = '<!doctype html><title>anubis</title>';
