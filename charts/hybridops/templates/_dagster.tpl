{{/* Shared by the Dagster pods: instance config, password, scratch. */}}
{{- define "hybridops.dagster.env" -}}
- name: DAGSTER_HOME
  value: /opt/dagster/dagster_home
{{ include "hybridops.pg.passwordEnv" (dict "ctx" . "role" "dagster" "name" "DAGSTER_PG_PASSWORD") }}
{{- end -}}

{{- define "hybridops.dagster.checksums" -}}
{{ include "hybridops.checksum" (dict "ctx" . "name" "dagster-instance" "template" "configmap-dagster-instance.yaml") }}
{{ include "hybridops.checksum" (dict "ctx" . "name" "dagster-workspace" "template" "configmap-dagster-workspace.yaml") }}
{{- if and .Values.postgresql.enabled (not .Values.postgresql.existingSecret) }}
{{ include "hybridops.checksum" (dict "ctx" . "name" "postgresql-secret" "template" "secret-postgresql.yaml") }}
{{- end }}
{{- end -}}

{{/* A webserver Deployment: (dict "ctx" $ "component" "dagster-webserver" "values" .Values.dagster.webserver "readOnly" bool) */}}
{{- define "hybridops.dagster.webserver" -}}
{{- $ := .ctx -}}
{{- $c := dict "ctx" $ "component" .component "values" $.Values.dagster.scheduling -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  {{- include "hybridops.metadata" $c | nindent 2 }}
spec:
  replicas: {{ .values.replicas }}
  selector:
    matchLabels:
      {{- include "hybridops.selectorLabels" $c | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "hybridops.podLabels" $c | nindent 8 }}
      annotations:
        {{- include "hybridops.dagster.checksums" $ | nindent 8 }}
        {{- with $.Values.dagster.scheduling.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "hybridops.componentName" (dict "ctx" $ "component" "dagster") }}
      {{- if .readOnly }}
      # The read-only webserver cannot launch or terminate runs: no API token.
      automountServiceAccountToken: false
      {{- else }}
      # Terminating runs deletes their Jobs through the Kubernetes API.
      automountServiceAccountToken: true
      {{- end }}
      enableServiceLinks: false
      securityContext:
        {{- include "hybridops.podSecurityContext" $ | nindent 8 }}
      {{- include "hybridops.imagePullSecrets" $ | nindent 6 }}
      {{- include "hybridops.scheduling" (merge (dict "spread" (gt (int .values.replicas) 1)) $c) | nindent 6 }}
      containers:
        - name: webserver
          image: {{ include "hybridops.image" (dict "ctx" $ "image" $.Values.dagster.image) }}
          imagePullPolicy: {{ $.Values.dagster.image.pullPolicy }}
          securityContext:
            {{- include "hybridops.containerSecurityContext" $ | nindent 12 }}
          command: ["dagster-webserver"]
          args:
            - --host=0.0.0.0
            - --port=3000
            - --workspace=/opt/dagster/workspace/workspace.yaml
            {{- if .readOnly }}
            - --read-only
            {{- end }}
          env:
            {{- include "hybridops.dagster.env" $ | nindent 12 }}
            {{- include "hybridops.telemetryEnv" $ | nindent 12 }}
          ports:
            - name: http
              containerPort: 3000
              protocol: TCP
          startupProbe:
            httpGet:
              path: /server_info
              port: http
            periodSeconds: 5
            failureThreshold: 60
          readinessProbe:
            httpGet:
              path: /server_info
              port: http
            periodSeconds: 10
            timeoutSeconds: 5
          livenessProbe:
            tcpSocket:
              port: http
            periodSeconds: 20
            failureThreshold: 6
          resources:
            {{- toYaml .values.resources | nindent 12 }}
          volumeMounts:
            - name: instance
              mountPath: /opt/dagster/dagster_home
              readOnly: true
            - name: workspace
              mountPath: /opt/dagster/workspace
              readOnly: true
            {{- include "hybridops.tmpMount" $ | nindent 12 }}
      volumes:
        - name: instance
          configMap:
            name: {{ include "hybridops.componentName" (dict "ctx" $ "component" "dagster-instance") }}
        - name: workspace
          configMap:
            name: {{ include "hybridops.componentName" (dict "ctx" $ "component" "dagster-workspace") }}
        {{- include "hybridops.tmpVolume" $ | nindent 8 }}
{{- end -}}

{{- define "hybridops.dagster.service" -}}
{{- $c := dict "ctx" .ctx "component" .component -}}
apiVersion: v1
kind: Service
metadata:
  {{- include "hybridops.metadata" $c | nindent 2 }}
spec:
  type: {{ .service.type }}
  selector:
    {{- include "hybridops.selectorLabels" $c | nindent 4 }}
  ports:
    - name: http
      port: {{ .service.port }}
      targetPort: http
      protocol: TCP
{{- end -}}
