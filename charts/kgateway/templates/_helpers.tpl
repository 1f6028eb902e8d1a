{{/*
Names, labels, and the settings every layout shares.

Where the layouts differ, and only there, a template asks "kgateway.layout.*":
  kgateway.layout.env     the settings that say how clients reach a node
  kgateway.layout.ports   the node's Kafka ports
and templates/service-<layout>.yaml holds the Service clients use.

The SNI layout (GATEWAY_ROUTING_MECHANISM=host) is a "sni" branch in kgateway.layout.env
(routing by host, the wildcard suffix every node advertises, TLS with the key store from a
Secret and its password from another), one port in kgateway.layout.ports, the key store
Secret in kgateway.layout.volumes, and templates/service-sni.yaml.
*/}}

{{- define "kgateway.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kgateway.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kgateway.headless" -}}
{{- printf "%s-headless" (include "kgateway.fullname" .) -}}
{{- end -}}

{{- define "kgateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kgateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kgateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "kgateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "kgateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kgateway.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kgateway.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "kgateway.adminSecretName" -}}
{{- default (printf "%s-admin-api" (include "kgateway.fullname" .)) .Values.adminApi.existingSecret -}}
{{- end -}}

{{- define "kgateway.adminSecretKey" -}}
{{- if .Values.adminApi.existingSecret -}}
{{- .Values.adminApi.existingSecretKey -}}
{{- else -}}
GATEWAY_ADMIN_API_USERS
{{- end -}}
{{- end -}}

{{/* GATEWAY_PORT_COUNT: given, or room for two more brokers. */}}
{{- define "kgateway.portCount" -}}
{{- if eq .Values.layout "sni" -}}
1
{{- else -}}
{{- default (add (int .Values.kafka.brokers) 2) .Values.ports.count | int -}}
{{- end -}}
{{- end -}}

{{/* The pod's grace period: the drain's length (values.yaml's formula), or the given one. */}}
{{- define "kgateway.drainSeconds" -}}
{{- $drainMs := mul (int .Values.shutdown.delayBetweenBrokersMs) (int .Values.kafka.brokers) -}}
{{- add (int .Values.shutdown.preStopSleepSeconds) (div (add $drainMs 999) 1000) (int .Values.shutdown.drainMarginSeconds) -}}
{{- end -}}

{{- define "kgateway.gracePeriod" -}}
{{- $needed := include "kgateway.drainSeconds" . | int -}}
{{- $given := .Values.shutdown.terminationGracePeriodSeconds -}}
{{- if kindIs "invalid" $given -}}
{{- $needed -}}
{{- else if lt (int $given) $needed -}}
{{- fail (printf "shutdown.terminationGracePeriodSeconds=%d is shorter than the drain: preStopSleepSeconds + ceil(delayBetweenBrokersMs * kafka.brokers / 1000) + drainMarginSeconds = %d; give %d or more, or leave it empty" (int $given) $needed $needed) -}}
{{- else -}}
{{- int $given -}}
{{- end -}}
{{- end -}}

{{/* Whether /metrics needs credentials: GATEWAY_SECURED_METRICS, true unless set false. */}}
{{- define "kgateway.securedMetrics" -}}
{{- $value := get .Values.env "GATEWAY_SECURED_METRICS" | toString | lower -}}
{{- if has $value (list "false" "0" "no" "off") -}}false{{- else -}}true{{- end -}}
{{- end -}}

{{/*
Refuse values the node would refuse or that would make the chart lie: one line naming the
value and what to do, as the node itself does for a bad setting.
*/}}
{{- define "kgateway.validate" -}}
{{- if not (has .Values.layout (list "internal" "external" "sni")) -}}
{{- fail (printf "layout=%q: valid: internal, external or sni" .Values.layout) -}}
{{- end -}}
{{- if eq .Values.layout "sni" -}}
{{- if not .Values.sni.advertisedHost -}}
{{- fail "sni.advertisedHost is required with layout=sni: the suffix of every broker's name (broker-N.<it>), which one wildcard DNS record points at the Service" -}}
{{- end -}}
{{- if not .Values.sni.keyStore.secretName -}}
{{- fail "sni.keyStore.secretName is required with layout=sni: a Secret holding the nodes' key store, whose certificate covers *.<sni.advertisedHost>" -}}
{{- end -}}
{{- if and .Values.ports.count (ne (int .Values.ports.count) 1) -}}
{{- fail (printf "ports.count=%d with layout=sni: SNI routing listens on one port for every broker; leave ports.count empty" (int .Values.ports.count)) -}}
{{- end -}}
{{- end -}}
{{- if not .Values.kafka.bootstrapServers -}}
{{- fail "kafka.bootstrapServers is required (KAFKA_BOOTSTRAP_SERVERS): host:port[,host:port...] of your Kafka brokers" -}}
{{- end -}}
{{- if and (not .Values.adminApi.existingSecret) (not .Values.adminApi.users) -}}
{{- fail "adminApi.existingSecret or adminApi.users is required: without GATEWAY_ADMIN_API_USERS the node serves no admin API, and the readiness and liveness probes are on it" -}}
{{- end -}}
{{- $owned := dict
  "KAFKA_BOOTSTRAP_SERVERS" "kafka.bootstrapServers"
  "GATEWAY_CLUSTER_ID" "clusterId"
  "GATEWAY_ADVERTISED_HOST" "layout (and external.advertisedHost)"
  "GATEWAY_FEATURE_FLAGS_INTERNAL_LOAD_BALANCING" "layout"
  "GATEWAY_PORT_START" "ports.start"
  "GATEWAY_PORT_COUNT" "ports.count"
  "GATEWAY_MIN_BROKERID" "kafka.minBrokerId"
  "GATEWAY_HTTP_PORT" "ports.admin"
  "GATEWAY_SHUTDOWN_DELAY_BETWEEN_BROKERS_MS" "shutdown.delayBetweenBrokersMs"
  "GATEWAY_ADMIN_API_USERS" "adminApi"
  "GATEWAY_HTTP_TLS_KEY" "adminApi.tlsSecret"
  "GATEWAY_HTTP_TLS_CERT" "adminApi.tlsSecret" -}}
{{- if eq .Values.layout "sni" -}}
{{- range $name, $from := dict "GATEWAY_ROUTING_MECHANISM" "layout" "GATEWAY_SECURITY_PROTOCOL" "sni.securityProtocol" "GATEWAY_ADVERTISED_SNI_PORT" "sni.service.port" "GATEWAY_ADVERTISED_HOST_PREFIX" "sni.hostPrefix" "GATEWAY_SNI_HOST_SEPARATOR" "sni.hostSeparator" "GATEWAY_SSL_KEY_STORE_PATH" "sni.keyStore" "GATEWAY_SSL_KEY_TYPE" "sni.keyStore.type" "GATEWAY_SSL_KEY_STORE_PASSWORD" "sni.keyStore.passwordSecret" -}}
{{- $_ := set $owned $name $from -}}
{{- end -}}
{{- end -}}
{{- if ne .Values.rack.mode "none" -}}
{{- $_ := set $owned "GATEWAY_RACK_ID" "rack (or rack.mode=none)" -}}
{{- end -}}
{{- $names := keys .Values.env -}}
{{- range .Values.secretEnv -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- range $name := $names | sortAlpha -}}
{{- if hasKey $owned $name -}}
{{- fail (printf "%s is set by the chart: set %s instead of env or secretEnv" $name (get $owned $name)) -}}
{{- end -}}
{{- end -}}
{{- if and (eq .Values.layout "external") (eq .Values.external.service.type "LoadBalancer") (not .Values.external.advertisedHost) -}}
{{- fail "external.advertisedHost is required with external.service.type=LoadBalancer: the name clients reach the load balancer by (its address is not known when the chart renders)" -}}
{{- end -}}
{{- if and (eq .Values.rack.mode "perZone") (not .Values.rack.zones) -}}
{{- fail "rack.mode=perZone needs rack.zones: one entry per zone, e.g. [{zone: eu-west-1a, rack: a}]" -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled (eq (include "kgateway.securedMetrics" .) "true") (not .Values.metrics.serviceMonitor.basicAuth.secretName) -}}
{{- fail "metrics.serviceMonitor needs metrics.serviceMonitor.basicAuth.secretName (an admin API user's username and password), or env.GATEWAY_SECURED_METRICS: \"false\"" -}}
{{- end -}}
{{- end -}}

{{/*
The StatefulSets: one, or with rack.mode=perZone one per zone.  A list of
{name, replicas, zone, rack} as YAML.
*/}}
{{- define "kgateway.workloads" -}}
{{- $fullname := include "kgateway.fullname" . -}}
{{- if eq .Values.rack.mode "perZone" -}}
{{- range .Values.rack.zones }}
{{- $rack := default .zone .rack }}
- name: {{ printf "%s-%s" $fullname (default $rack .name) | trunc 52 | trimSuffix "-" | lower }}
  replicas: {{ default 1 .replicas | int }}
  zone: {{ .zone | quote }}
  rack: {{ $rack | quote }}
{{- end }}
{{- else }}
- name: {{ $fullname }}
  replicas: {{ .Values.replicas | int }}
{{- end }}
{{- end -}}

{{/* The Kafka ports, named kafka-<n>, as a containerPort (or Service port) list. */}}
{{- define "kgateway.layout.ports" -}}
{{- $start := int .Values.ports.start -}}
{{- range $offset := until (include "kgateway.portCount" . | int) }}
- name: kafka-{{ $offset }}
  containerPort: {{ add $start $offset }}
  protocol: TCP
{{- end }}
{{- end -}}

{{/* The settings that say how clients reach this node. */}}
{{- define "kgateway.layout.env" -}}
{{- if eq .Values.layout "internal" -}}
# Each pod's own stable name: the headless Service gives every StatefulSet pod one.
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: GATEWAY_ADVERTISED_HOST
  value: {{ printf "$(POD_NAME).%s.%s.svc.%s" (include "kgateway.headless" .) .Release.Namespace .Values.clusterDomain | quote }}
- name: GATEWAY_FEATURE_FLAGS_INTERNAL_LOAD_BALANCING
  value: "true"
{{- else if eq .Values.layout "external" -}}
- name: GATEWAY_ADVERTISED_HOST
  value: {{ include "kgateway.externalHost" . | quote }}
- name: GATEWAY_FEATURE_FLAGS_INTERNAL_LOAD_BALANCING
  value: "false"
{{- else if eq .Values.layout "sni" -}}
{{- $sni := .Values.sni -}}
# One TLS port for every broker: broker N is <prefix><separator>N.<advertisedHost>, and the
# Service (TLS passed through) may send any name to any node.
- name: GATEWAY_ROUTING_MECHANISM
  value: host
- name: GATEWAY_ADVERTISED_HOST
  value: {{ $sni.advertisedHost | quote }}
- name: GATEWAY_FEATURE_FLAGS_INTERNAL_LOAD_BALANCING
  value: "false"
- name: GATEWAY_ADVERTISED_SNI_PORT
  value: {{ $sni.service.port | quote }}
- name: GATEWAY_ADVERTISED_HOST_PREFIX
  value: {{ $sni.hostPrefix | quote }}
- name: GATEWAY_SNI_HOST_SEPARATOR
  value: {{ $sni.hostSeparator | quote }}
- name: GATEWAY_SECURITY_PROTOCOL
  value: {{ $sni.securityProtocol | quote }}
- name: GATEWAY_SSL_KEY_STORE_PATH
  value: {{ printf "/etc/kgateway/sni/%s" $sni.keyStore.key | quote }}
- name: GATEWAY_SSL_KEY_TYPE
  value: {{ $sni.keyStore.type | quote }}
{{- with $sni.keyStore.passwordSecret }}
{{- if .name }}
- name: GATEWAY_SSL_KEY_STORE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .key }}
{{- end }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* layout: external: the load balancer's name, or the Service's own in the cluster. */}}
{{- define "kgateway.externalHost" -}}
{{- default (printf "%s.%s.svc.%s" (include "kgateway.fullname" .) .Release.Namespace .Values.clusterDomain) .Values.external.advertisedHost -}}
{{- end -}}

{{/* Volumes a layout needs beyond the common ones (the SNI layout's key store). */}}
{{- define "kgateway.layout.volumes" -}}
{{- if eq .Values.layout "sni" -}}
- name: sni-key-store
  secret:
    secretName: {{ .Values.sni.keyStore.secretName }}
{{- end -}}
{{- end -}}

{{- define "kgateway.layout.volumeMounts" -}}
{{- if eq .Values.layout "sni" -}}
- name: sni-key-store
  mountPath: /etc/kgateway/sni
  readOnly: true
{{- end -}}
{{- end -}}

{{/* The admin API's scheme, for the probes and the ServiceMonitor. */}}
{{- define "kgateway.adminScheme" -}}
{{- if .Values.adminApi.tlsSecret -}}HTTPS{{- else -}}HTTP{{- end -}}
{{- end -}}
