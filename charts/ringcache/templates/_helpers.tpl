{{/*
Names. Every object is named "<fullname>-<component>"; fullname is the
release name (plus the chart name unless the release name contains it),
truncated so that the longest suffix still fits in 63 characters.
*/}}
{{- define "ringcache.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ringcache.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ringcache.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "ringcache.labels" -}}
helm.sh/chart: {{ include "ringcache.chart" . }}
app.kubernetes.io/name: {{ include "ringcache.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ringcache
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels of one component: (dict "ctx" $ "component" "cache-node").
Every ringcache pod carries app.kubernetes.io/name and instance, which is
what the NetworkPolicy admits to the peer port.
*/}}
{{- define "ringcache.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ringcache.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "ringcache.componentLabels" -}}
{{ include "ringcache.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The ringcache image (cachenode and csi binaries). */}}
{{- define "ringcache.image" -}}
{{- $img := .Values.image -}}
{{- $repo := $img.repository -}}
{{- if $img.registry }}{{ $repo = printf "%s/%s" $img.registry $img.repository }}{{ end -}}
{{- if $img.digest -}}
{{ printf "%s@%s" $repo $img.digest }}
{{- else -}}
{{ printf "%s:%s" $repo (default .Chart.AppVersion $img.tag) }}
{{- end -}}
{{- end }}

{{/* A sidecar image: (dict "image" .Values.csiNode.registrar.image). */}}
{{- define "ringcache.sidecarImage" -}}
{{- if .image.digest -}}
{{ printf "%s@%s" .image.repository .image.digest }}
{{- else -}}
{{ printf "%s:%s" .image.repository .image.tag }}
{{- end -}}
{{- end }}

{{/* ServiceAccount name of a component: (dict "ctx" $ "component" "cache-node" "sa" .Values.cacheNode.serviceAccount). */}}
{{- define "ringcache.serviceAccountName" -}}
{{- if .sa.create }}
{{- default (printf "%s-%s" (include "ringcache.fullname" .ctx) .component) .sa.name }}
{{- else }}
{{- default "default" .sa.name }}
{{- end }}
{{- end }}

{{/* Secret names. */}}
{{- define "ringcache.tokenSecretName" -}}
{{- default (printf "%s-token" (include "ringcache.fullname" .)) .Values.clusterToken.existingSecret }}
{{- end }}

{{- define "ringcache.gossipKeySecretName" -}}
{{- default (printf "%s-gossip-key" (include "ringcache.fullname" .)) .Values.gossipKey.existingSecret }}
{{- end }}

{{- define "ringcache.volumesSecretName" -}}
{{- default (printf "%s-volumes" (include "ringcache.fullname" .)) .Values.volumes.existingSecret }}
{{- end }}

{{/* The headless Service that resolves to every cache node. */}}
{{- define "ringcache.cacheServiceName" -}}
{{- printf "%s-cache" (include "ringcache.fullname" .) }}
{{- end }}

{{- define "ringcache.cacheServiceFQDN" -}}
{{- printf "%s.%s.svc.%s" (include "ringcache.cacheServiceName" .) .Release.Namespace .Values.clusterDomain }}
{{- end }}

{{/* Socket directory of the CSI node plugin on the host. */}}
{{- define "ringcache.csiPluginDir" -}}
{{- printf "%s/plugins/%s" (trimSuffix "/" .Values.kubeletDir) .Values.csiDriver.name }}
{{- end }}
