{{/*
Names and labels.
*/}}
{{- define "switchboard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "switchboard.fullname" -}}
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

{{- define "switchboard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "switchboard.labels" -}}
helm.sh/chart: {{ include "switchboard.chart" . }}
app.kubernetes.io/name: {{ include "switchboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: switchboard
{{- end -}}

{{/* Selector labels of one component: (dict "root" . "component" "router"|"crm"). */}}
{{- define "switchboard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchboard.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "switchboard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The Secret with the instances' environment (SWITCHBOARD_CRM_API_KEY, ...). */}}
{{- define "switchboard.secretName" -}}
{{- default (include "switchboard.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* The Secret with the CRM store's SWITCHBOARD_CRM_DATABASE. */}}
{{- define "switchboard.crmSecretName" -}}
{{- default (printf "%s-crm" (include "switchboard.fullname" .)) .Values.crm.builtin.existingSecret -}}
{{- end -}}

{{/*
redis.url. The password is not in the ConfigMap: "${REDIS_PASSWORD}" is expanded by the daemon
from its environment (the Secret).
*/}}
{{- define "switchboard.redisUrl" -}}
{{- $r := .Values.redis -}}
{{- $auth := "" -}}
{{- if $r.auth -}}
{{- $auth = printf "%s:${REDIS_PASSWORD}@" (default "" $r.username) -}}
{{- else if $r.username -}}
{{- $auth = printf "%s@" $r.username -}}
{{- end -}}
{{- if eq $r.mode "sentinel" -}}
{{- printf "redis+sentinel://%s%s/%s/%d" $auth (join "," $r.sentinel.sentinels) $r.sentinel.service (int $r.db) -}}
{{- else if eq $r.mode "cluster" -}}
{{- printf "redis+cluster://%s%s" $auth (join "," $r.cluster.nodes) -}}
{{- else -}}
{{- $scheme := "redis" -}}
{{- if $r.standalone.tls -}}
{{- $scheme = "rediss" -}}
{{- end -}}
{{- printf "%s://%s%s:%d/%d" $scheme $auth $r.standalone.host (int $r.standalone.port) (int $r.db) -}}
{{- end -}}
{{- end -}}

{{/* crm.endpoint: the chart's CRM store, or yours. */}}
{{- define "switchboard.crmEndpoint" -}}
{{- if eq .Values.crm.mode "builtin" -}}
{{- printf "http://%s-crm:%d" (include "switchboard.fullname" .) (int .Values.crm.builtin.service.port) -}}
{{- else -}}
{{- .Values.crm.external.endpoint -}}
{{- end -}}
{{- end -}}

{{/*
Settings that cannot work stop the rendering with a message naming the value.
*/}}
{{- define "switchboard.validate" -}}
{{- $v := .Values -}}
{{- if eq $v.redis.mode "cluster" -}}
{{- if not $v.redis.cluster.nodes -}}
{{- fail "redis.cluster.nodes: name a few of the cluster's nodes (host:6379) for redis.mode=cluster" -}}
{{- end -}}
{{- if ne (int $v.redis.db) 0 -}}
{{- fail "redis.db: a Redis Cluster has only database 0" -}}
{{- end -}}
{{- if $v.redis.standalone.tls -}}
{{- fail "redis.standalone.tls: TLS to a Redis Cluster is not supported yet" -}}
{{- end -}}
{{- else if eq $v.redis.mode "sentinel" -}}
{{- if not $v.redis.sentinel.sentinels -}}
{{- fail "redis.sentinel.sentinels: name the Sentinels (host:26379, three or more) for redis.mode=sentinel" -}}
{{- end -}}
{{- if not $v.redis.sentinel.service -}}
{{- fail "redis.sentinel.service: the name the Sentinels monitor the primary under (e.g. mymaster)" -}}
{{- end -}}
{{- else if eq $v.redis.mode "standalone" -}}
{{- if not $v.redis.standalone.host -}}
{{- fail "redis.standalone.host: Redis's host name for redis.mode=standalone" -}}
{{- end -}}
{{- else -}}
{{- fail (printf "redis.mode: %q is none of standalone, sentinel, cluster" (toString $v.redis.mode)) -}}
{{- end -}}
{{- if lt (int $v.replicaCount) 2 -}}
{{- fail "replicaCount: at least 2, so that one instance routes while another restarts" -}}
{{- end -}}
{{- if not (has $v.crm.mode (list "builtin" "external" "disabled")) -}}
{{- fail (printf "crm.mode: %q is none of builtin, external, disabled" (toString $v.crm.mode)) -}}
{{- end -}}
{{- if and (eq $v.crm.mode "external") (not $v.crm.external.endpoint) -}}
{{- fail "crm.external.endpoint: the URL of your CRM store for crm.mode=external" -}}
{{- end -}}
{{- range $k := list "grpc_listen" "http_listen" "metrics_listen" "instance_id" "shutdown_grace_secs" -}}
{{- if hasKey (default (dict) $v.config.server) $k -}}
{{- fail (printf "config.server.%s is set by the chart (shutdown_grace_secs: use shutdownGraceSecs)" $k) -}}
{{- end -}}
{{- end -}}
{{- range $k := list "url" "key_prefix" "domain" -}}
{{- if hasKey (default (dict) $v.config.redis) $k -}}
{{- fail (printf "config.redis.%s is set by the chart from redis.*" $k) -}}
{{- end -}}
{{- end -}}
{{- range $k := list "enabled" "endpoint" "api_key" "database" "listen" -}}
{{- if hasKey (default (dict) $v.config.crm) $k -}}
{{- fail (printf "config.crm.%s is set by the chart from crm.* and secrets.*" $k) -}}
{{- end -}}
{{- end -}}
{{- end -}}
