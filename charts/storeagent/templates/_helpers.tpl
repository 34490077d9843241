{{/* Names, labels and small shared snippets. */}}

{{- define "storeagent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "storeagent.fullname" -}}
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

{{- define "storeagent.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "storeagent.labels" -}}
helm.sh/chart: {{ include "storeagent.chart" . }}
app.kubernetes.io/part-of: storeagent
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The operator's selector labels: the operator's own NetworkPolicies admit pods with these (settings.py). */}}
{{- define "storeagent.operator.selectorLabels" -}}
app.kubernetes.io/name: storeagent-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "storeagent.operator.fullname" -}}
{{- printf "%s-operator" (include "storeagent.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "storeagent.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "storeagent.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* FreeSWITCH selector labels: agents' NetworkPolicies admit pods labelled app.kubernetes.io/name=freeswitch. */}}
{{- define "storeagent.freeswitch.selectorLabels" -}}
app.kubernetes.io/name: freeswitch
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "storeagent.freeswitch.fullname" -}}
{{- printf "%s-freeswitch" (include "storeagent.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "storeagent.freeswitch.eslSecretName" -}}
{{- default (printf "%s-esl" (include "storeagent.freeswitch.fullname" .)) .Values.freeswitch.eventSocket.existingSecret -}}
{{- end -}}

{{/* Image reference; the tag defaults to the chart's appVersion so one chart version pins one release. */}}
{{- define "storeagent.image" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/*
A random secret value that survives upgrades: reuse the live Secret's key when it exists (lookup returns
nothing under `helm template` and dry-runs, which then show a fresh value).
*/}}
{{- define "storeagent.persistentRandom" -}}
{{- $existing := lookup "v1" "Secret" .namespace .name -}}
{{- if and $existing $existing.data (index $existing.data .key) -}}
{{- index $existing.data .key -}}
{{- else -}}
{{- randAlphaNum 48 | b64enc -}}
{{- end -}}
{{- end -}}

{{/* Namespaces that get the stream-token Secret: agents mount it from their own (the shop's) namespace. */}}
{{- define "storeagent.streamTokenNamespaces" -}}
{{- $list := list .Release.Namespace -}}
{{- range .Values.streamToken.namespaces -}}
{{- if not (has . $list) -}}{{- $list = append $list . -}}{{- end -}}
{{- end -}}
{{- toJson $list -}}
{{- end -}}

{{/* Ports fixed by freeswitch/conf (trunk.xml sip-port, event_socket.conf.xml listen-port, switch.conf.xml RTP
     range); tests/unit/test_chart_files.py checks them against the conf. */}}
{{- define "storeagent.freeswitch.sipPort" -}}5060{{- end -}}
{{- define "storeagent.freeswitch.eslPort" -}}8021{{- end -}}
{{- define "storeagent.freeswitch.rtpPorts" -}}16384-16583{{- end -}}

{{/* Speech service selector labels: agents' NetworkPolicies (operator) allow egress to pods with these. */}}
{{- define "storeagent.speech.selectorLabels" -}}
app.kubernetes.io/name: storeagent-speech
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "storeagent.speech.fullname" -}}
{{- printf "%s-speech" (include "storeagent.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The URL agents use (the operator renders it into their STOREAGENT_SPEECH_URL). */}}
{{- define "storeagent.speech.url" -}}
{{- printf "ws://%s.%s.svc:%v" (include "storeagent.speech.fullname" .) .Release.Namespace .Values.speech.port -}}
{{- end -}}

{{/* The owner web (storeagent web serve). */}}
{{- define "storeagent.web.selectorLabels" -}}
app.kubernetes.io/name: storeagent-web
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "storeagent.web.fullname" -}}
{{- printf "%s-web" (include "storeagent.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Namespaces of the shops the web serves ("<namespace>.<name>"): it gets a Role on StoreAgents in each. */}}
{{- define "storeagent.web.namespaces" -}}
{{- $list := list -}}
{{- range .Values.web.shops -}}
{{- $ns := index (splitList "." .) 0 -}}
{{- if not (has $ns $list) -}}{{- $list = append $list $ns -}}{{- end -}}
{{- end -}}
{{- toJson $list -}}
{{- end -}}
