"""The ops console: one page with the trading state, health, alerts, Grafana panels and the controls."""
