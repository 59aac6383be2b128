{{/* ---------------------------------------------------------------- names and labels */}}
{{- define "hybridops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hybridops.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of a component's objects: (dict "ctx" $ "component" "mlflow") */}}
{{- define "hybridops.componentName" -}}
{{- printf "%s-%s" (include "hybridops.fullname" .ctx) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hybridops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hybridops.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "hybridops.labels" -}}
{{ include "hybridops.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: hybridops
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* metadata block of a namespaced object: (dict "ctx" $ "component" "x" "name" "optional") */}}
{{- define "hybridops.metadata" -}}
name: {{ .name | default (include "hybridops.componentName" .) }}
namespace: {{ .ctx.Release.Namespace }}
labels:
  {{- include "hybridops.labels" . | nindent 2 }}
{{- end -}}

{{/* ---------------------------------------------------------------- images */}}
{{/* (dict "ctx" $ "image" .Values.x.image) */}}
{{- define "hybridops.image" -}}
{{- $registry := .image.registry | default .ctx.Values.global.image.registry -}}
{{- $tag := .image.tag | default .ctx.Chart.AppVersion -}}
{{- if eq (toString $tag) "latest" -}}
{{- fail (printf "image %s: the 'latest' tag is not allowed, pin a version" .image.repository) -}}
{{- end -}}
{{- if .image.digest -}}
{{- printf "%s/%s:%s@%s" $registry .image.repository $tag .image.digest -}}
{{- else -}}
{{- printf "%s/%s:%s" $registry .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "hybridops.imagePullSecrets" -}}
{{- with .Values.global.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* ---------------------------------------------------------------- security */}}
{{- define "hybridops.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.global.security.runAsUser }}
runAsGroup: {{ .Values.global.security.runAsGroup }}
fsGroup: {{ .Values.global.security.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "hybridops.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.global.security.runAsUser }}
runAsGroup: {{ .Values.global.security.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* scheduling of a pod: (dict "ctx" $ "component" "x" "values" .Values.x.scheduling "spread" bool) */}}
{{- define "hybridops.scheduling" -}}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .spread }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "hybridops.selectorLabels" . | nindent 8 }}
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "hybridops.selectorLabels" . | nindent 8 }}
{{- end }}
{{- end -}}

{{/* pod labels: (dict "ctx" $ "component" "x" "values" scheduling "extra" dict) */}}
{{- define "hybridops.podLabels" -}}
{{ include "hybridops.labels" . }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- if .values }}
{{- with .values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* ---------------------------------------------------------------- secrets */}}
{{/* A generated secret value, base64: kept from the existing Secret when the cluster has one.
     (dict "ctx" $ "name" "secret-name" "key" "password") */}}
{{- define "hybridops.secretValue" -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .name -}}
{{- if and $existing $existing.data (hasKey $existing.data .key) -}}
{{- index $existing.data .key -}}
{{- else -}}
{{- randAlphaNum 32 | b64enc -}}
{{- end -}}
{{- end -}}

{{/* ---------------------------------------------------------------- data stores */}}
{{- define "hybridops.postgresql.needed" -}}
{{- if or .Values.dagster.enabled .Values.mlflow.enabled .Values.feast.enabled (include "hybridops.lakehouse.enabled" .) }}true{{ end -}}
{{- end -}}

{{/* The warehouse is the lakehouse (hybridops.config.warehouse.backend): its catalog is on PostgreSQL. */}}
{{- define "hybridops.lakehouse.enabled" -}}
{{- if eq (.Values.hybridops.config.warehouse.backend | default "duckdb") "lakehouse" }}true{{ end -}}
{{- end -}}

{{/* The lakehouse's catalog URL (when hybridops.lakehouse.enabled), the password joined in by Kubernetes'
     $(VAR) expansion (its own variable, so the block needs nothing defined before it). */}}
{{- define "hybridops.lakehouse.env" -}}
{{ include "hybridops.pg.passwordEnv" (dict "ctx" . "role" "lakehouse" "name" "WAREHOUSE_PG_PASSWORD") }}
- name: HYBRIDOPS_WAREHOUSE__CATALOG_URL
  value: {{ printf "postgresql+psycopg2://%s:$(WAREHOUSE_PG_PASSWORD)@%s:%s/%s" (include "hybridops.pg.user" (dict "ctx" . "role" "lakehouse")) (include "hybridops.postgresql.host" .) (include "hybridops.postgresql.port" .) .Values.hybridops.lakehouseDatabase | quote }}
{{- end -}}

{{- define "hybridops.postgresql.host" -}}
{{- if .Values.postgresql.enabled -}}
{{- include "hybridops.componentName" (dict "ctx" . "component" "postgresql") -}}
{{- else -}}
{{- .Values.postgresql.external.host -}}
{{- end -}}
{{- end -}}

{{- define "hybridops.postgresql.port" -}}
{{- if .Values.postgresql.enabled }}{{ .Values.postgresql.port }}{{ else }}{{ .Values.postgresql.external.port }}{{ end -}}
{{- end -}}

{{- define "hybridops.postgresql.secretName" -}}
{{- if .Values.postgresql.enabled -}}
{{- .Values.postgresql.existingSecret | default (include "hybridops.componentName" (dict "ctx" . "component" "postgresql")) -}}
{{- else -}}
{{- .Values.postgresql.external.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "hybridops.postgresql.secretKey" -}}
{{- if .Values.postgresql.enabled -}}
{{- if .Values.postgresql.existingSecret }}{{ .Values.postgresql.existingSecretPasswordKey }}{{ else }}password{{ end -}}
{{- else -}}
{{- .Values.postgresql.external.existingSecretPasswordKey -}}
{{- end -}}
{{- end -}}

{{/* The PostgreSQL login of one client: (dict "ctx" $ "role" "dagster"|"mlflow"|"feast"|"lakehouse").
     The bundled server has a role per component owning only its database (configmap-postgresql.yaml), its
     password under the key <role>-password of the PostgreSQL Secret; an external server takes the one
     login of postgresql.username / postgresql.external.existingSecret. */}}
{{- define "hybridops.pg.user" -}}
{{- if .ctx.Values.postgresql.enabled }}{{ .role }}{{ else }}{{ .ctx.Values.postgresql.username }}{{ end -}}
{{- end -}}

{{- define "hybridops.pg.secretKey" -}}
{{- if .ctx.Values.postgresql.enabled }}{{ .role }}-password{{ else }}{{ include "hybridops.postgresql.secretKey" .ctx }}{{ end -}}
{{- end -}}

{{/* The roles of the bundled server (JSON list), in the order the role script creates them. */}}
{{- define "hybridops.pg.roles" -}}
{{- $roles := list -}}
{{- if .Values.dagster.enabled }}{{ $roles = append $roles "dagster" }}{{ end -}}
{{- if .Values.mlflow.enabled }}{{ $roles = append $roles "mlflow" }}{{ end -}}
{{- if .Values.feast.enabled }}{{ $roles = append $roles "feast" }}{{ end -}}
{{- if include "hybridops.lakehouse.enabled" . }}{{ $roles = append $roles "lakehouse" }}{{ end -}}
{{- toJson $roles -}}
{{- end -}}

{{/* env entry NAME with the password of a role: (dict "ctx" $ "role" r "name" "PG_PASSWORD") */}}
{{- define "hybridops.pg.passwordEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "hybridops.postgresql.secretName" .ctx }}
      key: {{ include "hybridops.pg.secretKey" . }}
{{- end -}}

{{- define "hybridops.redis.needed" -}}
{{- if or .Values.feast.enabled .Values.inference.enabled }}true{{ end -}}
{{- end -}}

{{- define "hybridops.redis.host" -}}
{{- if .Values.redis.enabled -}}
{{- include "hybridops.componentName" (dict "ctx" . "component" "redis") -}}
{{- else -}}
{{- .Values.redis.external.host -}}
{{- end -}}
{{- end -}}

{{- define "hybridops.redis.port" -}}
{{- if .Values.redis.enabled }}{{ .Values.redis.port }}{{ else }}{{ .Values.redis.external.port }}{{ end -}}
{{- end -}}

{{- define "hybridops.redis.secretName" -}}
{{- if .Values.redis.enabled -}}
{{- .Values.redis.existingSecret | default (include "hybridops.componentName" (dict "ctx" . "component" "redis")) -}}
{{- else -}}
{{- .Values.redis.external.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "hybridops.redis.secretKey" -}}
{{- if .Values.redis.enabled -}}
{{- if .Values.redis.existingSecret }}{{ .Values.redis.existingSecretPasswordKey }}{{ else }}password{{ end -}}
{{- else -}}
{{- .Values.redis.external.existingSecretPasswordKey -}}
{{- end -}}
{{- end -}}

{{- define "hybridops.mlflow.url" -}}
{{- printf "http://%s:%v" (include "hybridops.componentName" (dict "ctx" . "component" "mlflow")) .Values.mlflow.service.port -}}
{{- end -}}

{{- define "hybridops.mlflow.authSecretName" -}}
{{- .Values.mlflow.auth.existingSecret | default (include "hybridops.componentName" (dict "ctx" . "component" "mlflow-auth")) -}}
{{- end -}}

{{- define "hybridops.mlflow.authSecretKey" -}}
{{- if .Values.mlflow.auth.existingSecret }}{{ .Values.mlflow.auth.existingSecretPasswordKey }}{{ else }}password{{ end -}}
{{- end -}}

{{- define "hybridops.mlflow.flaskKeyKey" -}}
{{- if .Values.mlflow.auth.existingSecret }}{{ .Values.mlflow.auth.existingSecretFlaskKeyKey }}{{ else }}flask-secret-key{{ end -}}
{{- end -}}

{{/* Usage telemetry (hybridops.telemetry): off by default, as on a laptop (hybridops/telemetry.py). Every
     container of the platform image carries it: MLflow server and clients, Dagster, Feast, hybridops. */}}
{{- define "hybridops.telemetryEnv" -}}
{{- if .Values.hybridops.telemetry }}
- name: HYBRIDOPS_TELEMETRY
  value: "true"
{{- else }}
- name: MLFLOW_DISABLE_TELEMETRY
  value: "true"
- name: DO_NOT_TRACK
  value: "true"
{{- end }}
{{- end -}}

{{/* The source folder the source sensor watches (hybridops.sourceDir): user-code server and run pods. */}}
{{- define "hybridops.sourceDirEnv" -}}
{{- with .Values.hybridops.sourceDir }}
- name: HYBRIDOPS_SOURCE_DIR
  value: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* Environment of the processes that run hybridops code (user code, run pods, inference):
     passwords by secretKeyRef, URLs assembled by Kubernetes' $(VAR) expansion. */}}
{{- define "hybridops.platformEnv" -}}
{{- $login := .mlflowLogin | default "trainer" }}
{{- with .ctx -}}
- name: HYBRIDOPS_HOME
  value: /data
{{ include "hybridops.telemetryEnv" . }}
{{- if .Values.feast.enabled }}
{{ include "hybridops.pg.passwordEnv" (dict "ctx" . "role" "feast" "name" "PG_PASSWORD") }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "hybridops.redis.secretName" . }}
      key: {{ include "hybridops.redis.secretKey" . }}
{{ include "hybridops.feast.registryEnv" . }}
- name: HYBRIDOPS_FEAST__ONLINE_STORE__TYPE
  value: redis
- name: HYBRIDOPS_FEAST__ONLINE_STORE__CONNECTION_STRING
  value: {{ printf "%s:%s,password=$(REDIS_PASSWORD)" (include "hybridops.redis.host" .) (include "hybridops.redis.port" .) | quote }}
{{- end }}
{{- if .Values.mlflow.enabled }}
{{ include "hybridops.mlflow.clientEnv" (dict "ctx" . "login" $login) }}
{{- end }}
{{- if include "hybridops.lakehouse.enabled" . }}
{{ include "hybridops.lakehouse.env" . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The roles of the Feast Permissions: Kubernetes Role names in the release namespace (role-feast.yaml). */}}
{{- define "hybridops.feast.readerRole" -}}
{{ include "hybridops.componentName" (dict "ctx" . "component" "feast-reader") }}
{{- end -}}
{{- define "hybridops.feast.writerRole" -}}
{{ include "hybridops.componentName" (dict "ctx" . "component" "feast-writer") }}
{{- end -}}

{{/* Feast's SQL registry (needs PG_PASSWORD, the feast role's password, defined before it), and the role
     names the Permissions applied to it name. */}}
{{- define "hybridops.feast.registryEnv" -}}
- name: HYBRIDOPS_FEAST__PROJECT
  value: {{ .Values.feast.project | quote }}
- name: HYBRIDOPS_FEAST__READER_ROLE
  value: {{ include "hybridops.feast.readerRole" . | quote }}
- name: HYBRIDOPS_FEAST__WRITER_ROLE
  value: {{ include "hybridops.feast.writerRole" . | quote }}
- name: HYBRIDOPS_FEAST__REGISTRY
  value: {{ printf "postgresql+psycopg://%s:$(PG_PASSWORD)@%s:%s/%s" (include "hybridops.pg.user" (dict "ctx" . "role" "feast")) (include "hybridops.postgresql.host" .) (include "hybridops.postgresql.port" .) .Values.feast.database | quote }}
{{- end -}}

{{/* An MLflow client of the tracking server with one login, its password by secretKeyRef:
     (dict "ctx" $ "login" "trainer"|"reader"|"monitor"). Never the admin: the admin is the MLflow pod's own. */}}
{{- define "hybridops.mlflow.clientEnv" -}}
{{- $login := .login }}
{{- with .ctx -}}
{{- $a := .Values.mlflow.auth }}
{{- $users := dict "trainer" $a.trainerUsername "reader" $a.readerUsername "monitor" $a.monitorUsername }}
{{- if not (hasKey $users $login) }}{{ fail (printf "hybridops.mlflow.clientEnv: unknown login %q" $login) }}{{- end -}}
- name: MLFLOW_TRACKING_URI
  value: {{ include "hybridops.mlflow.url" . | quote }}
- name: HYBRIDOPS_MLFLOW__TRACKING_URI
  value: {{ include "hybridops.mlflow.url" . | quote }}
{{- /* The names the trainer's grants cover (deployment-mlflow.yaml): the pods use these, not their own. */}}
- name: HYBRIDOPS_MLFLOW__EXPERIMENT
  value: {{ .Values.mlflow.experiment | quote }}
- name: HYBRIDOPS_MLFLOW__MODEL_NAME
  value: {{ .Values.mlflow.modelName | quote }}
- name: MLFLOW_TRACKING_USERNAME
  value: {{ index $users $login | quote }}
- name: MLFLOW_TRACKING_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "hybridops.mlflow.authSecretName" . }}
      key: {{ include "hybridops.mlflow.loginKey" (dict "ctx" . "login" $login) }}
{{- end }}
{{- end -}}

{{/* Key of the mlflow-auth Secret (or existingSecret) holding a login's password:
     (dict "ctx" $ "login" "reader"|"trainer"|"monitor"). */}}
{{- define "hybridops.mlflow.loginKey" -}}
{{- $a := .ctx.Values.mlflow.auth -}}
{{- if eq .login "reader" }}{{ include "hybridops.mlflow.readerKey" .ctx }}
{{- else if eq .login "trainer" }}{{ if $a.existingSecret }}{{ $a.existingSecretTrainerKey }}{{ else }}trainer-password{{ end }}
{{- else if eq .login "monitor" }}{{ if $a.existingSecret }}{{ $a.existingSecretMonitorKey }}{{ else }}monitor-password{{ end }}
{{- else }}{{ fail (printf "hybridops.mlflow.loginKey: unknown login %q" .login) }}{{ end -}}
{{- end -}}

{{/* Key of the read-only login of the inference service. */}}
{{- define "hybridops.mlflow.readerKey" -}}
{{- if .Values.mlflow.auth.existingSecret }}{{ .Values.mlflow.auth.existingSecretReaderKey }}{{ else }}reader-password{{ end -}}
{{- end -}}

{{/* ---------------------------------------------------------------- exporter */}}
{{- define "hybridops.exporter.enabled" -}}
{{- if and .Values.exporter.enabled .Values.monitoring.enabled }}true{{ end -}}
{{- end -}}

{{/* The component that provides each exporter source (monitoring.exporter_sources): the warehouse is on the
     data volume of the Dagster pipeline. A source of a component this release does not deploy fails the
     render (hybridops.validate): the exporter would report it down forever. */}}
{{- define "hybridops.exporter.sourceComponents" -}}
{{- dict "dagster" "dagster" "warehouse" "dagster" "feast" "feast" "mlflow" "mlflow" | toJson -}}
{{- end -}}

{{/* ---------------------------------------------------------------- checksums */}}
{{- define "hybridops.checksum" -}}
checksum/{{ .name }}: {{ include (print .ctx.Template.BasePath "/" .template) .ctx | sha256sum }}
{{- end -}}

{{/* ---------------------------------------------------------------- scratch volumes */}}
{{- define "hybridops.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 1Gi
{{- end -}}

{{- define "hybridops.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* ---------------------------------------------------------------- PDB and HPA
     (dict "ctx" $ "component" "x" "replicas" n "autoscaling" .Values.x.autoscaling "kind" "Deployment") */}}
{{- define "hybridops.pdb" -}}
{{- if or (gt (int .replicas) 1) (and .autoscaling .autoscaling.enabled) }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  {{- include "hybridops.metadata" . | nindent 2 }}
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      {{- include "hybridops.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}

{{- define "hybridops.hpa" -}}
{{- if and .autoscaling .autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  {{- include "hybridops.metadata" . | nindent 2 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "hybridops.componentName" . }}
  minReplicas: {{ .autoscaling.minReplicas }}
  maxReplicas: {{ .autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .autoscaling.targetCpuUtilization }}
{{- end }}
{{- end -}}

{{/* replicas of a Deployment that may be autoscaled */}}
{{- define "hybridops.replicas" -}}
{{- if not (and .autoscaling .autoscaling.enabled) }}
replicas: {{ .replicas }}
{{- end }}
{{- end -}}

{{- define "hybridops.spread" -}}
{{- if or (gt (int .replicas) 1) (and .autoscaling .autoscaling.enabled) }}true{{ end -}}
{{- end -}}

{{/* ---------------------------------------------------------------- profiles */}}
{{/* The module the user-code server loads: dagster.codeLocation.module, default the profile's. */}}
{{- define "hybridops.codeLocation.module" -}}
{{- $default := dict "hybrid" "dagster_project.definitions" "dataops" "dagster_project.definitions_dataops" "mlops" "dagster_project.definitions_mlops" -}}
{{- .Values.dagster.codeLocation.module | default (index $default .Values.hybridops.profile) -}}
{{- end -}}

{{/* Whether the profile runs the DataOps half (ingest, quality, SPC, warehouse, report) / the ML half. */}}
{{- define "hybridops.profile.data" -}}
{{- if ne .Values.hybridops.profile "mlops" }}true{{ end -}}
{{- end -}}

{{- define "hybridops.profile.ml" -}}
{{- if ne .Values.hybridops.profile "dataops" }}true{{ end -}}
{{- end -}}

{{/* Alert rules of files/rules/*.yaml that watch something this release deploys (toJson of the groups):
     a rule on serving, Feast, model or data-quality metrics is left out when nothing produces them, so
     no alert of a part another release runs fires here (nor the exporter's absent() alert without an exporter). */}}
{{- define "hybridops.rules.groups" -}}
{{- $needs := dict "hybridops_serving_" .Values.inference.enabled "hybridops_feast_" .Values.feast.enabled "hybridops_model_" (and .Values.mlflow.enabled (include "hybridops.profile.ml" . | eq "true")) "hybridops_quality_" (include "hybridops.profile.data" . | eq "true") "hybridops_spc_" (include "hybridops.profile.data" . | eq "true") "hybridops_exporter_" (include "hybridops.exporter.enabled" . | eq "true") -}}
{{- $groups := list -}}
{{- range $path, $_ := .Files.Glob "files/rules/*.yaml" -}}
{{- range $group := (fromYaml ($.Files.Get $path)).groups -}}
{{- $rules := list -}}
{{- range $rule := $group.rules -}}
{{- $keep := true -}}
{{- range $prefix, $deployed := $needs -}}
{{- if and (contains $prefix (toString $rule.expr)) (not $deployed) -}}
{{- $keep = false -}}
{{- end -}}
{{- end -}}
{{- /* Job alerts of the ML jobs (training|scoring) or of the data jobs, by the profile that runs them. */ -}}
{{- $ml := contains "dagster_job=~\"training|scoring\"" (toString $rule.expr) -}}
{{- $data := contains "dagster_job!~\"training|scoring\"" (toString $rule.expr) -}}
{{- if or (and $ml (not (include "hybridops.profile.ml" $))) (and $data (not (include "hybridops.profile.data" $))) -}}
{{- $keep = false -}}
{{- end -}}
{{- if $keep -}}
{{- $rules = append $rules $rule -}}
{{- end -}}
{{- end -}}
{{- if $rules -}}
{{- $groups = append $groups (merge (dict "rules" $rules) (omit $group "rules")) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $groups -}}
{{- end -}}

{{/* Whether a dashboard of files/dashboards applies to this release (by the part it shows). */}}
{{- define "hybridops.dashboard.deployed" -}}
{{- $name := base .path -}}
{{- $v := .ctx.Values -}}
{{- $needs := dict "serving.json" $v.inference.enabled "feature-store.json" $v.feast.enabled "model.json" (and $v.mlflow.enabled (include "hybridops.profile.ml" .ctx | eq "true")) "data-quality-spc.json" (include "hybridops.profile.data" .ctx | eq "true") -}}
{{- if or (not (hasKey $needs $name)) (index $needs $name) }}true{{ end -}}
{{- end -}}

{{/* ---------------------------------------------------------------- validation */}}
{{- define "hybridops.validate" -}}
{{- if .Values.feast.enabled -}}
{{- if and (eq .Values.feast.auth.mode "oidc") (not .Values.feast.auth.discoveryUrl) -}}
{{- fail "feast.auth.mode=oidc needs feast.auth.discoveryUrl (the identity provider's discovery document)" -}}
{{- end -}}
{{- if and (ne .Values.feast.auth.mode "oidc") .Values.feast.auth.discoveryUrl -}}
{{- fail (printf "feast.auth.discoveryUrl is set but feast.auth.mode is %s: set feast.auth.mode=oidc to use it" .Values.feast.auth.mode) -}}
{{- end -}}
{{- end -}}
{{- if not (has .Values.monitoring.mode (list "bundled" "external")) -}}
{{- fail (printf "monitoring.mode must be bundled or external, got %q" (toString .Values.monitoring.mode)) -}}
{{- end -}}
{{- if and (include "hybridops.postgresql.needed" .) (not .Values.postgresql.enabled) -}}
{{- if not .Values.postgresql.external.host -}}
{{- fail "postgresql.enabled=false requires postgresql.external.host (Dagster, MLflow and Feast need a PostgreSQL)" -}}
{{- end -}}
{{- if not .Values.postgresql.external.existingSecret -}}
{{- fail "postgresql.enabled=false requires postgresql.external.existingSecret (the Secret holding the password)" -}}
{{- end -}}
{{- end -}}
{{- if and (include "hybridops.redis.needed" .) (not .Values.redis.enabled) -}}
{{- if not .Values.redis.external.host -}}
{{- fail "redis.enabled=false requires redis.external.host (the Feast online store needs a Redis)" -}}
{{- end -}}
{{- if not .Values.redis.external.existingSecret -}}
{{- fail "redis.enabled=false requires redis.external.existingSecret (the Secret holding the password)" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.dagster.enabled (include "hybridops.profile.ml" .) -}}
{{- range $component := list "mlflow" "feast" -}}
{{- if not (index $.Values $component).enabled -}}
{{- fail (printf "hybridops.profile=%s runs training, features and scoring: it needs %s.enabled=true (its server on PostgreSQL), never a file store on the data volume; or choose profiles/dataops.yaml" $.Values.hybridops.profile $component) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and .Values.inference.enabled .Values.dagster.enabled (not (has "ReadWriteMany" .Values.hybridops.data.accessModes)) (not .Values.hybridops.data.singleNode) -}}
{{- fail "inference.enabled=true with Dagster needs hybridops.data.accessModes to include ReadWriteMany: the inference pods and the run pods mount the data volume at once (the served-feature log the skew audit reads, the model cache); on a one-node cluster set hybridops.data.singleNode=true instead" -}}
{{- end -}}
{{- if and .Values.inference.enabled (not .Values.mlflow.enabled) -}}
{{- fail "inference.enabled=true requires mlflow.enabled=true (the service loads the champion from the registry)" -}}
{{- end -}}
{{- if and .Values.inference.enabled (not .Values.feast.enabled) -}}
{{- fail "inference.enabled=true requires feast.enabled=true (the service reads online features)" -}}
{{- end -}}
{{- if and .Values.mlflow.enabled (eq .Values.mlflow.artifacts.type "s3") (not .Values.mlflow.artifacts.s3.bucket) -}}
{{- fail "mlflow.artifacts.type=s3 requires mlflow.artifacts.s3.bucket" -}}
{{- end -}}
{{- range $component := list "mlflow" "feast" "inference" -}}
{{- $a := (index $.Values $component).autoscaling -}}
{{- if and $a.enabled (lt (int $a.maxReplicas) (int $a.minReplicas)) -}}
{{- fail (printf "%s.autoscaling.maxReplicas must be >= %s.autoscaling.minReplicas" $component $component) -}}
{{- end -}}
{{- end -}}
{{- if include "hybridops.exporter.enabled" . -}}
{{- $components := include "hybridops.exporter.sourceComponents" . | fromJson -}}
{{- range $source := .Values.hybridops.config.monitoring.exporter_sources -}}
{{- $component := index $components $source -}}
{{- if not (index $.Values $component).enabled -}}
{{- fail (printf "hybridops.config.monitoring.exporter_sources lists %s, but %s.enabled=false: leave it out (as profiles/dataops.yaml does), or the exporter reports it down" $source $component) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and .Values.dagster.enabled .Values.dagster.runLauncher.jobNamespace (ne .Values.dagster.runLauncher.jobNamespace .Release.Namespace) -}}
{{- fail "dagster.runLauncher.jobNamespace must be the release namespace (the Role, Secrets and PVC live there)" -}}
{{- end -}}
{{- end -}}

{{/* MLflow's database URIs, the password joined in by Kubernetes' $(VAR) expansion. */}}
{{- define "hybridops.mlflow.dbEnv" -}}
{{ include "hybridops.pg.passwordEnv" (dict "ctx" .ctx "role" "mlflow" "name" "PG_PASSWORD") }}
- name: MLFLOW_BACKEND_STORE_URI
  value: {{ printf "%s/%s" .db .ctx.Values.mlflow.database | quote }}
- name: MLFLOW_AUTH_DATABASE_URI
  value: {{ printf "%s/%s" .db .ctx.Values.mlflow.authDatabase | quote }}
{{- end -}}
