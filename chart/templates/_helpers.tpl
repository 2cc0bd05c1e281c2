{{/* Names, labels and the few computed values every template shares. */}}

{{- define "mock-device.namespace" -}}
{{- default .Release.Namespace .Values.namespace.name -}}
{{- end -}}

{{- define "mock-device.fullname" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* The release-scoped labels every object carries: (dict "root" $ "component" "<part>").
     The DaemonSets' selectors use only app.kubernetes.io/instance and `app`, as they always
     did: a selector cannot change on `helm upgrade`. */}}
{{- define "mock-device.labels" -}}
{{- $root := .root -}}
app.kubernetes.io/name: {{ $root.Chart.Name }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: mock-accel
app.kubernetes.io/component: {{ required "mock-device.labels needs a component" .component }}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* ServiceAccount names: computed once, used by the DaemonSets, the RBAC bindings and the
     admission policy, so the policy always matches the accounts the pods really run as. */}}
{{- define "mock-device.controllerServiceAccount" -}}
{{- if .Values.serviceAccount.controllerName -}}
{{- .Values.serviceAccount.controllerName -}}
{{- else if .Values.serviceAccount.create -}}
{{- printf "%s-controller" (include "mock-device.fullname" .) -}}
{{- else -}}
default
{{- end -}}
{{- end -}}

{{- define "mock-device.nodeAgentServiceAccount" -}}
{{- if .Values.serviceAccount.nodeAgentName -}}
{{- .Values.serviceAccount.nodeAgentName -}}
{{- else if .Values.serviceAccount.create -}}
{{- printf "%s-node-agent" (include "mock-device.fullname" .) -}}
{{- else -}}
default
{{- end -}}
{{- end -}}

{{/* The user names the API server gives those accounts' tokens. */}}
{{- define "mock-device.sliceWriters" -}}
{{- $ns := include "mock-device.namespace" . -}}
{{- $users := list -}}
{{- if .Values.draDriver.controller.enabled -}}
{{- $users = append $users (printf "system:serviceaccount:%s:%s" $ns (include "mock-device.controllerServiceAccount" .)) -}}
{{- end -}}
{{- if .Values.draDriver.nodeAgent.enabled -}}
{{- $users = append $users (printf "system:serviceaccount:%s:%s" $ns (include "mock-device.nodeAgentServiceAccount" .)) -}}
{{- end -}}
{{- $users | uniq | toJson -}}
{{- end -}}

{{- define "mock-device.image" -}}
{{- include "mock-device.imageRef" (dict "repository" .image.repository "tag" (default .root.Chart.AppVersion .image.tag) "digest" .image.digest) -}}
{{- end -}}

{{- define "mock-device.imagePullSecrets" -}}
{{- with .Values.global.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ if kindIs "map" . }}{{ .name }}{{ else }}{{ . }}{{ end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* KMM labels a node <namespace>.<module>.ready once the module is loaded there. */}}
{{- define "mock-device.moduleReadyLabel" -}}
{{- printf "kmm.node.kubernetes.io/%s.%s.ready" (include "mock-device.namespace" .) .Values.kernelModule.moduleName -}}
{{- end -}}

{{- define "mock-device.scheduling" -}}
{{- with .Values.draDriver.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .Values.kernelModule.enabled }}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
        - matchExpressions:
            - key: {{ include "mock-device.moduleReadyLabel" . }}
              operator: Exists
{{- end }}
{{- with .Values.draDriver.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Checks that JSON schema cannot express; each failure says what to change. */}}
{{- define "mock-device.validate" -}}
{{- $socket := .Values.draDriver.nodeAgent.pluginSocket | trimSuffix "/" -}}
{{- if and .Values.draDriver.nodeAgent.enabled (ne (base $socket) .Values.draDriver.name) -}}
{{- fail (printf "draDriver.nodeAgent.pluginSocket %q must end in /%s (the node agent keeps its socket in <kubelet plugins dir>/<draDriver.name>); set it to %s/%s" .Values.draDriver.nodeAgent.pluginSocket .Values.draDriver.name (dir $socket) .Values.draDriver.name) -}}
{{- end -}}
{{- $km := .Values.kernelModule -}}
{{- if and $km.enabled (eq $km.mode "build") $km.firmware.enabled (not (include "mock-device.wordlist" .)) -}}
{{- fail "kernelModule.mode=build with firmware.enabled puts the wordlist into the image, and this chart has none: run `make firmware` in the repository (files/firmware links to it) or pass --set-file kernelModule.firmware.wordlist=firmware/mock-accel-wordlist.txt (or set kernelModule.firmware.enabled=false)" -}}
{{- end -}}
{{- if and $km.enabled (eq $km.mode "build") (not $km.build.dockerfile.configMapEnabled) (not $km.build.dockerfile.configMapName) -}}
{{- fail "kernelModule.build.dockerfile.configMapEnabled=false needs kernelModule.build.dockerfile.configMapName (an existing ConfigMap with key `dockerfile`)" -}}
{{- end -}}
{{- $names := list -}}
{{- range .Values.deviceClasses -}}
{{- if has .name $names -}}
{{- fail (printf "deviceClasses: name %q is used twice" .name) -}}
{{- end -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- end -}}

{{/* The wordlist firmware: the value (--set-file) wins, else the chart's own copy
     (files/firmware links to the repository's firmware/, filled by `make firmware`; a packaged
     chart carries the file). Empty when neither exists. */}}
{{- define "mock-device.wordlist" -}}
{{- .Values.kernelModule.firmware.wordlist | default (.Files.Get "files/firmware/mock-accel-wordlist.txt") -}}
{{- end -}}

{{/* The node directory holding sys/class/mock-accel, sys/devices and dev: the simulated tree
     in simulation mode, else draDriver.hostRoot. Also refuses simulation values that make no
     sense together (the schema checks each value alone). */}}
{{- define "mock-device.hostRoot" -}}
{{- $sim := .Values.simulation -}}
{{- if $sim.enabled -}}
{{- if .Values.kernelModule.enabled -}}
{{- fail "simulation.enabled and kernelModule.enabled exclude each other: simulated devices replace the module's" -}}
{{- end -}}
{{- if gt (int $sim.num_vfs) (int $sim.total_vfs) -}}
{{- fail (printf "simulation.num_vfs=%v is above simulation.total_vfs=%v" $sim.num_vfs $sim.total_vfs) -}}
{{- end -}}
{{- $sim.hostDir -}}
{{- else -}}
{{- .Values.draDriver.hostRoot -}}
{{- end -}}
{{- end -}}

{{/* An image reference: repository:tag, repository:tag@digest when a digest is set (the tag
stays for people to read; the runtime pulls by digest), repository@digest without a tag. */}}
{{- define "mock-device.imageRef" -}}
{{- $ref := .repository -}}
{{- with .tag }}{{ $ref = printf "%s:%s" $ref . }}{{ end -}}
{{- with .digest }}{{ $ref = printf "%s@%s" $ref . }}{{ end -}}
{{- $ref -}}
{{- end -}}

{{/* hostPath type of the device tree's directories. A real node's module makes them and the pods
wait for them (Directory); in simulation mode the node agent's init container builds them, but
the kubelet checks volume types before init containers run, so they are made empty first. */}}
{{- define "mock-device.treeDirType" -}}
{{- if .Values.simulation.enabled }}DirectoryOrCreate{{ else }}Directory{{ end }}
{{- end }}
