{{/* ---------------------------------------------------------------- uiProxy: oauth2-proxy in front of the UIs */}}

{{/* The fronted UIs (toJson): {ui: {"component": proxy component, "upstream": in-cluster URL, "ui": values}}.
     Only UIs with uiProxy.uis.<ui>.enabled; hybridops.uiProxy.validate has made sure each is deployed. */}}
{{- define "hybridops.uiProxy.fronted" -}}
{{- $v := .Values -}}
{{- $ports := dict "dagster" $v.dagster.webserver.service.port "grafana" $v.monitoring.grafana.service.port "mlflow" $v.mlflow.service.port -}}
{{- $servers := dict "dagster" "dagster-webserver" "grafana" "grafana" "mlflow" "mlflow" -}}
{{- $out := dict -}}
{{- range $ui, $values := $v.uiProxy.uis -}}
{{- if $values.enabled -}}
{{- $server := include "hybridops.componentName" (dict "ctx" $ "component" (index $servers $ui)) -}}
{{- $_ := set $out $ui (dict "component" (printf "ui-proxy-%s" $ui) "server" (index $servers $ui) "upstream" (printf "http://%s:%v/" $server (index $ports $ui)) "ui" $values) -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* The proxies' components (toJson list), empty when uiProxy is off. */}}
{{- define "hybridops.uiProxy.components" -}}
{{- $components := list -}}
{{- if .Values.uiProxy.enabled -}}
{{- range $ui, $f := include "hybridops.uiProxy.fronted" . | fromJson -}}
{{- $components = append $components $f.component -}}
{{- end -}}
{{- end -}}
{{- toJson $components -}}
{{- end -}}

{{/* The proxy of one UI, if it has one: (dict "ctx" $ "ui" "dagster") -> "ui-proxy-dagster" or "". */}}
{{- define "hybridops.uiProxy.component" -}}
{{- $p := .ctx.Values.uiProxy -}}
{{- if and $p.enabled (index $p.uis .ui).enabled }}ui-proxy-{{ .ui }}{{ end -}}
{{- end -}}

{{- define "hybridops.uiProxy.validate" -}}
{{- $v := .Values -}}
{{- $p := $v.uiProxy -}}
{{- if $p.enabled -}}
{{- if not $p.existingSecret -}}
{{- fail (printf "uiProxy.enabled=true needs uiProxy.existingSecret: a Secret in namespace %s with the OAuth client secret under %q and the cookie secret (16, 24 or 32 bytes) under %q; the chart never generates them (see docs/deploy.md, \"Signing in to the UIs\")" .Release.Namespace $p.clientSecretKey $p.cookieSecretKey) -}}
{{- end -}}
{{- if not $p.oidc.issuerUrl -}}
{{- fail "uiProxy.enabled=true needs uiProxy.oidc.issuerUrl (the identity provider's OIDC issuer, https://...)" -}}
{{- end -}}
{{- if not $p.oidc.clientId -}}
{{- fail "uiProxy.enabled=true needs uiProxy.oidc.clientId (the OAuth client registered at the identity provider)" -}}
{{- end -}}
{{- if not $p.oidc.emailDomains -}}
{{- fail "uiProxy.enabled=true needs uiProxy.oidc.emailDomains: the email domains whose users may pass, or [\"*\"] for anyone the identity provider signs in (then narrow it with uiProxy.oidc.allowedGroups)" -}}
{{- end -}}
{{- $deployed := dict "dagster" $v.dagster.enabled "grafana" (and $v.monitoring.enabled (eq $v.monitoring.mode "bundled")) "mlflow" $v.mlflow.enabled -}}
{{- $needs := dict "dagster" "dagster.enabled=true" "grafana" "monitoring.enabled=true and monitoring.mode=bundled" "mlflow" "mlflow.enabled=true" -}}
{{- $any := false -}}
{{- range $ui, $values := $p.uis -}}
{{- if $values.enabled -}}
{{- $any = true -}}
{{- if not (index $deployed $ui) -}}
{{- fail (printf "uiProxy.uis.%s.enabled=true but this release does not deploy it: it needs %s, or set uiProxy.uis.%s.enabled=false" $ui (index $needs $ui) $ui) -}}
{{- end -}}
{{- if and $p.ingress.enabled (not $values.host) -}}
{{- fail (printf "uiProxy.ingress.enabled=true needs uiProxy.uis.%s.host (the host its Ingress rule answers)" $ui) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not $any -}}
{{- fail "uiProxy.enabled=true but no UI is fronted: enable one of uiProxy.uis.dagster, .grafana, .mlflow" -}}
{{- end -}}
{{- if and $p.uis.mlflow.enabled (not $p.uis.mlflow.host) -}}
{{- fail "uiProxy.uis.mlflow.enabled=true needs uiProxy.uis.mlflow.host: MLflow refuses requests whose Host it does not know, and the proxy passes the browser's" -}}
{{- end -}}
{{- end -}}
{{- end -}}
