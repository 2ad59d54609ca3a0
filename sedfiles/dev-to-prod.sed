# Environment promotion: host names and labels of the dev environment become prod's.
# Adapt the domain to your own naming; these follow <service>.<env>.example.internal.
s/\.dev\.example\.internal\b/.prod.example.internal/g
# Database clusters are named <app>-dev-db
s/-dev-db\b/-prod-db/g
# A literal label "env=dev" (in a query string or tag list)
s/\benv=dev\b/env=prod/g
