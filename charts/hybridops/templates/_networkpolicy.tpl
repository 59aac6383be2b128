{{/* Pods of this release with one of the given components: (dict "ctx" $ "components" (list ...)) */}}
{{- define "hybridops.np.podSelector" -}}
matchLabels:
  app.kubernetes.io/instance: {{ .ctx.Release.Name }}
matchExpressions:
  - key: app.kubernetes.io/component
    operator: In
    values:
      {{- toYaml .components | nindent 6 }}
{{- end -}}

{{/* An ingress policy: (dict "ctx" $ "name" n "to" (list components) "ports" (list names) "from" (list components) "peers" list "any" bool) */}}
{{- define "hybridops.np.ingress" -}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  {{- include "hybridops.metadata" (dict "ctx" .ctx "component" (printf "allow-%s" .name)) | nindent 2 }}
spec:
  podSelector:
    {{- include "hybridops.np.podSelector" (dict "ctx" .ctx "components" .to) | nindent 4 }}
  policyTypes: ["Ingress"]
  ingress:
    - ports:
        {{- range .ports }}
        - port: {{ . }}
          protocol: TCP
        {{- end }}
      {{- if not .any }}
      from:
        {{- if .from }}
        - podSelector:
            {{- include "hybridops.np.podSelector" (dict "ctx" .ctx "components" .from) | nindent 12 }}
        {{- end }}
        {{- with .peers }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
{{- end -}}
