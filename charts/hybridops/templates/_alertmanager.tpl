{{/* The bundled Alertmanager: routing tree, grouping and inhibition from infra/alertmanager/alertmanager.yml
     (copied into files/ by hybridops.deploy.assets), receivers from monitoring.alertmanager.receivers. */}}
{{- define "hybridops.alertmanager.enabled" -}}
{{- $m := .Values.monitoring -}}
{{- if and $m.enabled (eq $m.mode "bundled") $m.alertmanager.enabled }}true{{ end -}}
{{- end -}}

{{/* A boolean value or its default when unset: (list value default) -> "true" | "false". Values of
     optional objects (a receiver's webhook, slack, email) carry no defaults from values.yaml; these are
     the pydantic models' defaults (hybridops.deploy.values), and `default` would turn false into true. */}}
{{- define "hybridops.bool" -}}
{{- $value := index . 0 -}}
{{- if kindIs "bool" $value }}{{ $value }}{{ else }}{{ index . 1 }}{{ end -}}
{{- end -}}

{{/* Values key of a receiver of the routing tree: data-team-critical -> dataTeamCritical */}}
{{- define "hybridops.alertmanager.receiverKey" -}}
{{- . | replace "-" "_" | camelcase | untitle -}}
{{- end -}}

{{/* File (under /etc/alertmanager/secrets) of a receiver's SMTP password */}}
{{- define "hybridops.alertmanager.smtpPasswordFile" -}}
{{- printf "%s-smtp-password" . -}}
{{- end -}}

{{- define "hybridops.alertmanager.config" -}}
{{- $am := .Values.monitoring.alertmanager -}}
{{- $config := fromYaml (.Files.Get "files/alertmanager/alertmanager.yml") -}}
{{- if hasKey $config "Error" -}}
{{- fail (printf "files/alertmanager/alertmanager.yml does not parse: %s" $config.Error) -}}
{{- end -}}
{{- $receivers := list -}}
{{- range $receiver := $config.receivers -}}
{{- $key := include "hybridops.alertmanager.receiverKey" $receiver.name -}}
{{- if not (hasKey $am.receivers $key) -}}
{{- fail (printf "infra/alertmanager/alertmanager.yml routes to receiver %q: monitoring.alertmanager.receivers.%s is not a value" $receiver.name $key) -}}
{{- end -}}
{{- $v := index $am.receivers $key -}}
{{- $out := dict "name" $receiver.name -}}
{{- with $v.webhook -}}
{{- $webhook := dict "url" .url "send_resolved" (include "hybridops.bool" (list .sendResolved true) | eq "true") -}}
{{- $_ := set $out "webhook_configs" (list $webhook) -}}
{{- end -}}
{{- with $v.slack -}}
{{- $slack := dict "api_url" .apiUrl "send_resolved" (include "hybridops.bool" (list .sendResolved true) | eq "true") -}}
{{- with .channel }}{{ $_ := set $slack "channel" . }}{{ end -}}
{{- $_ := set $out "slack_configs" (list $slack) -}}
{{- end -}}
{{- with $v.email -}}
{{- $email := dict "to" .to "from" .from "smarthost" .smarthost -}}
{{- $_ := set $email "require_tls" (include "hybridops.bool" (list .requireTls true) | eq "true") -}}
{{- $_ := set $email "send_resolved" (include "hybridops.bool" (list .sendResolved false) | eq "true") -}}
{{- with .authUsername }}{{ $_ := set $email "auth_username" . }}{{ end -}}
{{- if .authPasswordSecret -}}
{{- $_ := set $email "auth_password_file" (printf "/etc/alertmanager/secrets/%s" (include "hybridops.alertmanager.smtpPasswordFile" $receiver.name)) -}}
{{- end -}}
{{- $_ := set $out "email_configs" (list $email) -}}
{{- end -}}
{{- $receivers = append $receivers $out -}}
{{- end -}}
{{- $_ := set $config "receivers" $receivers -}}
{{- toYaml $config -}}
{{- end -}}

{{/* Ports Alertmanager connects to outside the release: those of the receivers' URLs and smarthosts,
     and monitoring.alertmanager.egressPorts. One port per line, sorted, no duplicates. */}}
{{- define "hybridops.alertmanager.egressPorts" -}}
{{- $am := .Values.monitoring.alertmanager -}}
{{- $ports := list -}}
{{- range $port := $am.egressPorts }}{{ $ports = append $ports (toString $port) }}{{ end -}}
{{- if not $am.existingSecret -}}
{{- range $key, $v := $am.receivers -}}
{{- $urls := list -}}
{{- with $v.webhook }}{{ $urls = append $urls .url }}{{ end -}}
{{- with $v.slack }}{{ $urls = append $urls .apiUrl }}{{ end -}}
{{- range $url := $urls -}}
{{- $parsed := urlParse $url -}}
{{- if regexMatch ":[0-9]+$" $parsed.host -}}
{{- $ports = append $ports (regexFind "[0-9]+$" $parsed.host) -}}
{{- else -}}
{{- $ports = append $ports (ternary "443" "80" (eq $parsed.scheme "https")) -}}
{{- end -}}
{{- end -}}
{{- with $v.email }}{{ $ports = append $ports (regexFind "[0-9]+$" .smarthost) }}{{ end -}}
{{- end -}}
{{- end -}}
{{- range $port := $ports | uniq | sortAlpha }}
{{ $port }}
{{- end -}}
{{- end -}}
