"""herald's HTTP app: provider webhooks now; intake, suppressions and the operator page later."""
