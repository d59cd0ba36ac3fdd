{{/* Names */}}
{{- define "loraplex.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "loraplex.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<component>"; call with (dict "root" $ "component" "registry") */}}
{{- define "loraplex.componentName" -}}
{{- printf "%s-%s" (include "loraplex.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "loraplex.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "loraplex.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Kubernetes recommended labels; call with (dict "root" $ "component" "registry") */}}
{{- define "loraplex.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "loraplex.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | replace "+" "_" | trunc 63 | quote }}
app.kubernetes.io/part-of: loraplex
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "loraplex.selectorLabels" -}}
app.kubernetes.io/name: {{ include "loraplex.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end -}}

{{/* Image of a component: its own keys over the shared ones. (dict "root" $ "image" .image) */}}
{{- define "loraplex.image" -}}
{{- $img := merge (deepCopy (.image | default dict)) .root.Values.image -}}
image: {{ printf "%s:%s" $img.repository (default .root.Chart.AppVersion $img.tag | toString) | quote }}
imagePullPolicy: {{ $img.pullPolicy }}
{{- end -}}

{{/* The chart's Secret (external service URLs, keys) */}}
{{- define "loraplex.secretName" -}}
{{- include "loraplex.fullname" . -}}
{{- end -}}

{{- define "loraplex.jwtKeyPath" -}}/etc/loraplex/jwt/jwt-private-key.pem{{- end -}}

{{/* secretKeyRef env var: (dict "name" "LORAPLEX_X" "secret" "s" "key" "k") */}}
{{- define "loraplex.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
{{- end -}}

{{/* Database and broker URLs, S3 credentials: every process */}}
{{- define "loraplex.connectionEnv" -}}
{{- $chart := include "loraplex.secretName" . -}}
{{- with .Values.database }}
{{ include "loraplex.secretEnv" (dict "name" "LORAPLEX_DATABASE_URL" "secret" (default $chart .existingSecret) "key" (ternary .existingSecretKey "database-url" (ne .existingSecret ""))) }}
{{- end }}
{{- with .Values.broker }}
{{ include "loraplex.secretEnv" (dict "name" "LORAPLEX_BROKER_URL" "secret" (default $chart .existingSecret) "key" (ternary .existingSecretKey "broker-url" (ne .existingSecret ""))) }}
{{- end }}
{{- with .Values.s3 }}
{{- if or .existingSecret .accessKeyId }}
{{ include "loraplex.secretEnv" (dict "name" "LORAPLEX_S3_ACCESS_KEY_ID" "secret" (default $chart .existingSecret) "key" (ternary .accessKeyIdKey "s3-access-key-id" (ne .existingSecret ""))) }}
{{ include "loraplex.secretEnv" (dict "name" "LORAPLEX_S3_SECRET_ACCESS_KEY" "secret" (default $chart .existingSecret) "key" (ternary .secretAccessKeyKey "s3-secret-access-key" (ne .existingSecret ""))) }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "loraplex.engineKeyEnv" -}}
{{- with .Values.engine.apiKey }}
{{ include "loraplex.secretEnv" (dict "name" "LORAPLEX_ENGINE_API_KEY" "secret" (default (include "loraplex.secretName" $) .existingSecret) "key" (ternary .existingSecretKey "engine-api-key" (ne .existingSecret ""))) }}
{{- end }}
{{- end -}}

{{/* Pod-level settings every component shares; (dict "root" $ "c" .Values.registry) */}}
{{- define "loraplex.podSpecCommon" -}}
serviceAccountName: {{ include "loraplex.serviceAccountName" .root }}
automountServiceAccountToken: {{ .root.Values.serviceAccount.automountToken }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Container settings every component shares: image, env, security context */}}
{{- define "loraplex.containerCommon" -}}
{{ include "loraplex.image" (dict "root" .root "image" .c.image) }}
securityContext:
  {{- toYaml .root.Values.containerSecurityContext | nindent 2 }}
envFrom:
  - configMapRef:
      name: {{ include "loraplex.fullname" .root }}
{{- end -}}

{{/* Pod annotations: roll pods when the config or the Secret's inputs change */}}
{{- define "loraplex.podAnnotations" -}}
checksum/config: {{ include (print .root.Template.BasePath "/configmap.yaml") .root | sha256sum }}
checksum/secret: {{ toJson (list .root.Values.database .root.Values.broker .root.Values.s3 .root.Values.auth .root.Values.engine.apiKey) | sha256sum }}
{{- with .c.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* GPU requests/limits merged into a component's resources: (dict "resources" r "gpu" g) */}}
{{- define "loraplex.resources" -}}
{{- $res := deepCopy (.resources | default dict) -}}
{{- if and .gpu .gpu.enabled -}}
{{- $limits := get $res "limits" | default dict -}}
{{- $requests := get $res "requests" | default dict -}}
{{- $_ := set $limits .gpu.resourceName (.gpu.count | int) -}}
{{- $_ := set $requests .gpu.resourceName (.gpu.count | int) -}}
{{- $_ := set $res "limits" $limits -}}
{{- $_ := set $res "requests" $requests -}}
{{- end -}}
{{- toYaml $res -}}
{{- end -}}

{{/* Writable folders under a read-only root filesystem */}}
{{- define "loraplex.scratchVolumes" -}}
- name: tmp
  emptyDir: {}
- name: home
  emptyDir: {}
{{- end -}}

{{- define "loraplex.scratchMounts" -}}
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: /home/loraplex
{{- end -}}

{{- define "loraplex.jwtVolume" -}}
- name: jwt
  secret:
    secretName: {{ default (include "loraplex.secretName" .) .Values.auth.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ ternary .Values.auth.existingSecretKey "jwt-private-key.pem" (ne .Values.auth.existingSecret "") }}
        path: jwt-private-key.pem
{{- end -}}

{{- define "loraplex.auditKeyPath" -}}/etc/loraplex/audit/audit-hmac.key{{- end -}}

{{/* The audit chain's HMAC key: every process that writes audit events (registry, workers) */}}
{{- define "loraplex.auditVolume" -}}
- name: audit-key
  secret:
    secretName: {{ default (include "loraplex.secretName" .) .Values.audit.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ ternary .Values.audit.existingSecretKey "audit-hmac.key" (ne .Values.audit.existingSecret "") }}
        path: audit-hmac.key
{{- end -}}

{{- define "loraplex.auditMount" -}}
- name: audit-key
  mountPath: /etc/loraplex/audit
  readOnly: true
{{- end -}}

{{- define "loraplex.jwtMount" -}}
- name: jwt
  mountPath: /etc/loraplex/jwt
  readOnly: true
{{- end -}}

{{/* A disruption budget: maxUnavailable when set, else minAvailable */}}
{{- define "loraplex.pdb" -}}
{{- if .c.pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "loraplex.componentName" . }}
  labels:
    {{- include "loraplex.labels" . | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" .c.pdb.maxUnavailable) }}
  maxUnavailable: {{ .c.pdb.maxUnavailable }}
  {{- else }}
  minAvailable: {{ .c.pdb.minAvailable | default 1 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "loraplex.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}
