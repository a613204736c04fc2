{{/*
Template functions used by this chart are kept to a small subset (include/define, if/else,
range, with, toYaml, nindent, indent, quote, default, required, fail, b64enc, sha256sum, eq,
ne, gt, int, not, and, or, printf, trunc, trimSuffix, contains, .Files.Get) so that the repository's
tests can render it without a helm binary; see docs/deploy.md.
*/}}

{{- define "logwarden.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "logwarden.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "logwarden.selectorLabels" -}}
app.kubernetes.io/name: {{ include "logwarden.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "logwarden.labels" -}}
{{ include "logwarden.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: logwarden
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "logwarden.validate" -}}
{{- if not (or (eq .Values.mode "sidecar") (eq .Values.mode "aggregator")) -}}
{{- fail (printf "mode must be sidecar or aggregator, not %s" .Values.mode) -}}
{{- end -}}
{{- if and .Values.forward.sharedKey.existingSecret .Values.forward.sharedKey.value -}}
{{- fail "set forward.sharedKey.existingSecret or forward.sharedKey.value, not both" -}}
{{- end -}}
{{- if and .Values.forward.tls.enabled (not .Values.forward.tls.secretName) -}}
{{- fail "forward.tls.enabled needs forward.tls.secretName (a kubernetes.io/tls Secret)" -}}
{{- end -}}
{{- if .Values.ui.enabled -}}
{{- $auth := .Values.ui.auth -}}
{{- if and (not $auth.existingSecret) (not $auth.anonymous) -}}
{{- fail "ui.enabled needs ui.auth.existingSecret (a Secret with the page's credentials), or ui.auth.anonymous: true behind an authenticating proxy" -}}
{{- end -}}
{{- if and $auth.existingSecret $auth.anonymous -}}
{{- fail "set ui.auth.existingSecret or ui.auth.anonymous, not both" -}}
{{- end -}}
{{- if and $auth.existingSecret (not (or (and $auth.userKey $auth.passwordKey) $auth.tokenKey)) -}}
{{- fail "ui.auth.existingSecret needs ui.auth.userKey and ui.auth.passwordKey, or ui.auth.tokenKey" -}}
{{- end -}}
{{- if and .Values.ui.postgres.existingSecret (not .Values.ui.postgres.secretKey) -}}
{{- fail "ui.postgres.existingSecret needs ui.postgres.secretKey (the Secret key holding the postgres:// URL)" -}}
{{- end -}}
{{- else if .Values.ui.postgres.existingSecret -}}
{{- fail "ui.postgres.existingSecret has no effect unless ui.enabled: true" -}}
{{- end -}}
{{- if not (or (eq .Values.forward.storageType "memory") (eq .Values.forward.storageType "filesystem")) -}}
{{- fail (printf "forward.storageType must be memory or filesystem, not %s" .Values.forward.storageType) -}}
{{- end -}}
{{- if and (eq .Values.forward.storageType "filesystem") (not .Values.persistence.enabled) -}}
{{- fail "forward.storageType: filesystem acks chunks once they are on disk: it needs persistence.enabled, or an emptyDir would lose acked chunks with the pod" -}}
{{- end -}}
{{- $p := .Values.persistence -}}
{{- if $p.enabled -}}
{{- if eq .Values.mode "sidecar" -}}
{{- if $p.existingClaim -}}
{{- fail "persistence.existingClaim is for aggregator mode: the sidecar DaemonSet runs one pod per node, and one claim cannot follow them; sidecar mode keeps the data in persistence.hostPath on each node" -}}
{{- end -}}
{{- if not $p.hostPath -}}
{{- fail "persistence.enabled in sidecar mode needs persistence.hostPath (the node directory for storage.path)" -}}
{{- end -}}
{{- if eq (trimSuffix "/" $p.hostPath) (trimSuffix "/" .Values.sidecar.fluentBit.stateDir) -}}
{{- fail "persistence.hostPath must differ from sidecar.fluentBit.stateDir: logwarden (uid 10001) and Fluent Bit (uid 0) keep separate directories" -}}
{{- end -}}
{{- else if $p.existingClaim -}}
{{- if gt (int .Values.aggregator.replicas) 1 -}}
{{- fail (printf "persistence.existingClaim %s is one volume, and each replica needs its own storage.path (buffer chunks, dead letters and the SQLite file cannot be shared by processes): set aggregator.replicas: 1, or leave existingClaim empty for one claim per replica (a StatefulSet)" $p.existingClaim) -}}
{{- end -}}
{{- else -}}
{{- if not $p.size -}}
{{- fail "persistence.enabled needs persistence.size (or persistence.existingClaim)" -}}
{{- end -}}
{{- if not $p.accessModes -}}
{{- fail "persistence.enabled needs persistence.accessModes (e.g. [ReadWriteOnce])" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Aggregator mode with chart-made claims: a StatefulSet, one PersistentVolumeClaim per replica. */}}
{{- define "logwarden.statefulSet" -}}
{{- if and (eq .Values.mode "aggregator") .Values.persistence.enabled (not .Values.persistence.existingClaim) -}}true{{- end -}}
{{- end -}}

{{/* The page's alerts in a shared PostgreSQL (ui.postgres.existingSecret). */}}
{{- define "logwarden.uiStore" -}}
{{- if and .Values.ui.enabled .Values.ui.postgres.existingSecret -}}true{{- end -}}
{{- end -}}

{{/* Which credentials of the web page come from ui.auth.existingSecret. */}}
{{- define "logwarden.uiBasicAuth" -}}
{{- if and .Values.ui.enabled .Values.ui.auth.existingSecret .Values.ui.auth.userKey .Values.ui.auth.passwordKey -}}true{{- end -}}
{{- end -}}

{{- define "logwarden.uiToken" -}}
{{- if and .Values.ui.enabled .Values.ui.auth.existingSecret .Values.ui.auth.tokenKey -}}true{{- end -}}
{{- end -}}

{{- define "logwarden.sharedKeySecretName" -}}
{{- if .Values.forward.sharedKey.existingSecret -}}
{{- .Values.forward.sharedKey.existingSecret -}}
{{- else -}}
{{- printf "%s-forward" (include "logwarden.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "logwarden.sharedKeySecretKey" -}}
{{- if .Values.forward.sharedKey.existingSecret -}}
{{- .Values.forward.sharedKey.existingSecretKey -}}
{{- else -}}
FORWARD_SHARED_KEY
{{- end -}}
{{- end -}}

{{- define "logwarden.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The pipeline: .Values.pipeline verbatim, or one built from the values. */}}
{{- define "logwarden.pipeline" -}}
{{- if .Values.pipeline -}}
{{- .Values.pipeline -}}
{{- else -}}
# Generated by the logwarden Helm chart from its values.
service:
  log_level: {{ .Values.logLevel }}
  log_format: json
  grace: 10
  http_server: on
  http_listen: 0.0.0.0
  http_port: {{ .Values.http.port }}
  storage.path: /var/lib/logwarden
  {{- if .Values.ui.enabled }}
  ui: on
  ui.max_alerts: {{ .Values.ui.maxAlerts }}
  ui.retention: {{ .Values.ui.retention }}
  {{- if include "logwarden.uiStore" . }}
  # Every replica reads and writes the same PostgreSQL: one page for the whole cluster.
  ui.store: ${LOGWARDEN_UI_STORE}
  {{- else if .Values.ui.dbPath }}
  ui.db_path: {{ .Values.ui.dbPath }}
  {{- end }}
  {{- if include "logwarden.uiBasicAuth" . }}
  ui.http_user: ${UI_HTTP_USER}
  ui.http_passwd: ${UI_HTTP_PASSWD}
  {{- end }}
  {{- if include "logwarden.uiToken" . }}
  ui.bearer_token: ${UI_BEARER_TOKEN}
  {{- end }}
  {{- if and .Values.ui.alertmanagerSilences .Values.alertmanager.enabled }}
  # A mute on the page is also a silence there, on the labels the alertmanager output sets.
  ui.alertmanager_url: {{ .Values.alertmanager.url }}
  {{- end }}
  {{- end }}

parsers:
  - name: k8s_audit_json
    format: json
    time_key: stageTimestamp
    time_format: '%Y-%m-%dT%H:%M:%S.%LZ'
    time_keep: on

pipeline:
  inputs:
    - name: forward
      {{- if eq .Values.mode "sidecar" }}
      listen: 127.0.0.1
      {{- else }}
      listen: 0.0.0.0
      {{- end }}
      port: {{ .Values.forward.port }}
      shared_key: ${FORWARD_SHARED_KEY}
      self_hostname: ${POD_NAME}
      buffer_chunk_size: {{ .Values.forward.bufferChunkSize }}
      buffer_max_size: {{ .Values.forward.bufferMaxSize }}
      {{- if eq .Values.forward.storageType "filesystem" }}
      # Chunks are written under storage.path (persistence) and acked once stored.
      storage.type: filesystem
      {{- end }}
      {{- if .Values.forward.tls.enabled }}
      tls: on
      tls.crt_file: /etc/logwarden/tls/tls.crt
      tls.key_file: /etc/logwarden/tls/tls.key
      {{- if .Values.forward.tls.verifyClients }}
      tls.verify_client_cert: on
      tls.ca_file: /etc/logwarden/tls/ca.crt
      {{- else }}
      tls.verify: off
      {{- end }}
      {{- end }}

  filters:
    - name: parser
      match: kube.audit
      key_name: log
      parser: k8s_audit_json
      reserve_data: on

    - name: audit_policy
      match: kube.audit
      policy_file: /etc/logwarden/policy/audit-policy.yaml

    - name: modify
      match: '*'
      add: cluster ${CLUSTER_NAME}

    - name: detect
      match: kube.audit
      rules_file:
        - /opt/logwarden/rules/k8s_audit_rules.yaml
        {{- if .Values.rules }}
        {{- range $file, $content := .Values.rules }}
        - /etc/logwarden/rules/{{ $file }}
        {{- end }}
        {{- else }}
        - /etc/logwarden/rules/custom_rules.yaml
        {{- end }}
      alert_tag: falco
      {{- if eq .Values.mode "sidecar" }}
      # The control-plane node whose audit log this pod reads (downward API spec.nodeName):
      # stable across rollouts, unlike the pod name.
      hostname: ${NODE_NAME}
      {{- end }}
      {{- if .Values.ui.enabled }}
      # The web page shows the audit event behind each alert.
      include_event: on
      {{- end }}

  outputs:
    {{- if .Values.loki.enabled }}
    - name: loki
      alias: loki_audit
      match: kube.audit
      host: {{ .Values.loki.host }}
      port: {{ .Values.loki.port }}
      labels: {{ .Values.loki.labels }}, cluster=${CLUSTER_NAME}
      retry_limit: no_limits

    - name: loki
      alias: loki_alerts
      match: falco
      host: {{ .Values.loki.host }}
      port: {{ .Values.loki.port }}
      labels: {{ .Values.loki.alertLabels }}, cluster=${CLUSTER_NAME}, rule=$rule, priority=$priority
      retry_limit: no_limits
    {{- end }}
    {{- if .Values.alertmanager.enabled }}

    - name: alertmanager
      match: falco
      url: {{ .Values.alertmanager.url }}
      extra_labels: cluster:${CLUSTER_NAME}
      retry_limit: no_limits
    {{- end }}
    {{- if .Values.ui.enabled }}

    - name: ui
      match: falco
    {{- end }}
    {{- if not (or .Values.loki.enabled .Values.alertmanager.enabled) }}
    - name: stdout
      match: '*'
    {{- end }}
{{- end -}}
{{- end -}}

{{/* Fluent Bit's config in sidecar mode: tail the audit log, forward to 127.0.0.1. */}}
{{- define "logwarden.fluentBitConfig" -}}
{{- $fb := .Values.sidecar.fluentBit -}}
{{- if $fb.config -}}
{{- $fb.config -}}
{{- else -}}
# Generated by the logwarden Helm chart from its values.
service:
  flush: 1
  log_level: info
  http_server: on
  http_listen: 0.0.0.0
  http_port: {{ $fb.httpPort }}
  health_check: on
  storage.path: /var/lib/fluent-bit/storage
  storage.sync: normal
  storage.backlog.mem_limit: 16M
  storage.max_chunks_up: 32

parsers:
  - name: k8s_audit_json
    format: json
    time_key: stageTimestamp
    time_format: '%Y-%m-%dT%H:%M:%S.%LZ'
    time_keep: on

pipeline:
  inputs:
    - name: tail
      tag: kube.audit
      path: {{ printf "%s/%s" $fb.auditLogDir $fb.auditLogFile }}
      parser: k8s_audit_json
      db: /var/lib/fluent-bit/tail-kube-audit.db
      db.locking: true
      read_from_head: true
      buffer_chunk_size: 256K
      buffer_max_size: 4M
      skip_long_lines: on
      rotate_wait: 30
      storage.type: filesystem

  outputs:
    - name: forward
      match: kube.audit
      host: 127.0.0.1
      port: {{ .Values.forward.port }}
      shared_key: ${FORWARD_SHARED_KEY}
      self_hostname: ${NODE_NAME}
      require_ack_response: true
      retry_limit: no_limits
      storage.total_limit_size: {{ $fb.storageLimit }}
{{- end -}}
{{- end -}}

{{/* What a change of any config file changes: rolls the pods. */}}
{{- define "logwarden.configChecksum" -}}
{{- printf "%s\n%s\n%s\n%s" (include "logwarden.pipeline" .) (include "logwarden.policy" .) (toYaml .Values.rules) (include "logwarden.fluentBitConfig" .) | sha256sum -}}
{{- end -}}

{{- define "logwarden.policy" -}}
{{- default (.Files.Get "files/audit-policy.yaml") .Values.policy -}}
{{- end -}}

{{/* The logwarden container, the same in both modes but for the listen address and ports. */}}
{{- define "logwarden.container" -}}
- name: logwarden
  image: {{ include "logwarden.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["run", "-c", "/etc/logwarden/pipeline.yaml"]
  env:
    - name: FORWARD_SHARED_KEY
      valueFrom:
        secretKeyRef:
          name: {{ include "logwarden.sharedKeySecretName" . }}
          key: {{ include "logwarden.sharedKeySecretKey" . }}
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: NODE_NAME
      valueFrom:
        fieldRef:
          fieldPath: spec.nodeName
    - name: CLUSTER_NAME
      value: {{ .Values.clusterName | quote }}
    {{- if include "logwarden.uiBasicAuth" . }}
    - name: UI_HTTP_USER
      valueFrom:
        secretKeyRef:
          name: {{ .Values.ui.auth.existingSecret }}
          key: {{ .Values.ui.auth.userKey }}
    - name: UI_HTTP_PASSWD
      valueFrom:
        secretKeyRef:
          name: {{ .Values.ui.auth.existingSecret }}
          key: {{ .Values.ui.auth.passwordKey }}
    {{- end }}
    {{- if include "logwarden.uiToken" . }}
    - name: UI_BEARER_TOKEN
      valueFrom:
        secretKeyRef:
          name: {{ .Values.ui.auth.existingSecret }}
          key: {{ .Values.ui.auth.tokenKey }}
    {{- end }}
    {{- if include "logwarden.uiStore" . }}
    {{- $pg := .Values.ui.postgres }}
    - name: LOGWARDEN_UI_STORE
      valueFrom:
        secretKeyRef:
          name: {{ $pg.existingSecret }}
          key: {{ $pg.secretKey }}
    {{- if $pg.userKey }}
    - name: PGUSER
      valueFrom:
        secretKeyRef:
          name: {{ $pg.existingSecret }}
          key: {{ $pg.userKey }}
    {{- end }}
    {{- if $pg.passwordKey }}
    - name: PGPASSWORD
      valueFrom:
        secretKeyRef:
          name: {{ $pg.existingSecret }}
          key: {{ $pg.passwordKey }}
    {{- end }}
    {{- end }}
  ports:
    {{- if eq .Values.mode "aggregator" }}
    - name: forward
      containerPort: {{ .Values.forward.port }}
      protocol: TCP
    {{- end }}
    - name: http
      containerPort: {{ .Values.http.port }}
      protocol: TCP
  startupProbe:
    httpGet:
      path: /healthz
      port: http
    periodSeconds: 2
    failureThreshold: 30
  livenessProbe:
    httpGet:
      path: /healthz
      port: http
    periodSeconds: 10
    timeoutSeconds: 3
    failureThreshold: 3
  readinessProbe:
    httpGet:
      path: /readyz
      port: http
    periodSeconds: 5
    timeoutSeconds: 3
    failureThreshold: 2
  resources:
    {{- if eq .Values.mode "aggregator" }}
    {{- toYaml .Values.aggregator.resources | nindent 4 }}
    {{- else }}
    {{- toYaml .Values.resources | nindent 4 }}
    {{- end }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    runAsGroup: 10001
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    privileged: false
    capabilities:
      drop: ["ALL"]
    seccompProfile:
      type: RuntimeDefault
  volumeMounts:
    - name: config
      mountPath: /etc/logwarden
      readOnly: true
    - name: storage
      mountPath: /var/lib/logwarden
    - name: tmp
      mountPath: /tmp
{{- end -}}

{{/* logwarden's volumes: one projected volume (nested ConfigMap mounts cannot be created on a read-only mount),
storage.path (an emptyDir, a node directory or an existing claim; with the StatefulSet's claims it is a
volumeClaimTemplate) and /tmp. */}}
{{- define "logwarden.volumes" -}}
- name: config
  projected:
    sources:
      - configMap:
          name: {{ include "logwarden.fullname" . }}-pipeline
          items:
            - key: pipeline.yaml
              path: pipeline.yaml
      - configMap:
          name: {{ include "logwarden.fullname" . }}-policy
          items:
            - key: audit-policy.yaml
              path: policy/audit-policy.yaml
      - configMap:
          name: {{ include "logwarden.fullname" . }}-rules
          items:
            {{- if .Values.rules }}
            {{- range $file, $content := .Values.rules }}
            - key: {{ $file }}
              path: rules/{{ $file }}
            {{- end }}
            {{- else }}
            - key: custom_rules.yaml
              path: rules/custom_rules.yaml
            {{- end }}
      {{- if .Values.forward.tls.enabled }}
      - secret:
          name: {{ .Values.forward.tls.secretName }}
          items:
            - key: tls.crt
              path: tls/tls.crt
            - key: tls.key
              path: tls/tls.key
            {{- if .Values.forward.tls.verifyClients }}
            - key: ca.crt
              path: tls/ca.crt
            {{- end }}
      {{- end }}
{{- if not .Values.persistence.enabled }}
- name: storage
  emptyDir:
    sizeLimit: {{ .Values.storageSizeLimit }}
{{- else if eq .Values.mode "sidecar" }}
# storage.path on the node: kept across pod replacement on the same node.
- name: storage
  hostPath:
    path: {{ .Values.persistence.hostPath }}
    type: DirectoryOrCreate
{{- else if .Values.persistence.existingClaim }}
- name: storage
  persistentVolumeClaim:
    claimName: {{ .Values.persistence.existingClaim }}
{{- end }}
- name: tmp
  emptyDir:
    medium: Memory
    sizeLimit: 16Mi
{{- end -}}


{{/* Sidecar mode with persistence: the node directory is created by the kubelet as root; hand it to
logwarden's uid before logwarden starts (CHOWN and FOWNER only, nothing else). */}}
{{- define "logwarden.hostPathInit" -}}
- name: storage-owner
  image: {{ include "logwarden.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: ["sh", "-c", "chown 10001:10001 /var/lib/logwarden && chmod 0750 /var/lib/logwarden"]
  resources:
    requests:
      cpu: 10m
      memory: 16Mi
    limits:
      memory: 64Mi
  securityContext:
    runAsUser: 0
    runAsGroup: 0
    runAsNonRoot: false
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    privileged: false
    capabilities:
      drop: ["ALL"]
      add: ["CHOWN", "FOWNER"]
    seccompProfile:
      type: RuntimeDefault
  volumeMounts:
    - name: storage
      mountPath: /var/lib/logwarden
{{- end -}}

{{/* The aggregator pod template, shared by the Deployment and the StatefulSet. */}}
{{- define "logwarden.aggregatorPod" -}}
metadata:
  labels:
    {{- include "logwarden.selectorLabels" . | nindent 4 }}
    app.kubernetes.io/component: aggregator
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include "logwarden.configChecksum" . }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "logwarden.fullname" . }}
  automountServiceAccountToken: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.aggregator.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.aggregator.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  terminationGracePeriodSeconds: 30
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    runAsGroup: 10001
    fsGroup: 10001
    seccompProfile:
      type: RuntimeDefault
  {{- if .Values.aggregator.topologySpread }}
  topologySpreadConstraints:
    - maxSkew: 1
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "logwarden.selectorLabels" . | nindent 10 }}
    - maxSkew: 1
      topologyKey: topology.kubernetes.io/zone
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "logwarden.selectorLabels" . | nindent 10 }}
  {{- end }}
  containers:
    {{- include "logwarden.container" . | nindent 4 }}
  volumes:
    {{- include "logwarden.volumes" . | nindent 4 }}
{{- end -}}
