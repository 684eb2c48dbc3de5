# The runner shims as a Nomad service job. Run it with the forges' URLs
# (a shim runs for each URL given):
#
#   nomad var put nomad/jobs/solstice-runners forgejo_registration_token=TOKEN
#   nomad job run -var forgejo_url=https://forge.example.org/ \
#     -var github_url=https://github.com/OWNER/REPO runner-shims.nomad.hcl
#
# The shims talk to Nomad on their workload identity (identity { env =
# true } puts its token in NOMAD_TOKEN): on a cluster with ACLs, `solstice
# jobs sync` attaches jobspecs/acl/shims.policy.hcl to this job, and no
# Nomad token is handed to the shims anywhere. A nomad_token item in the
# Variable, if set, overrides the identity (for clusters that cannot use
# workload identities). Everything works in the namespace given with
# -var namespace=NS (the parent jobs synced with NOMAD_NAMESPACE=NS).
#
# GitHub runners are registered beforehand (`solstice github register`,
# see docs/github.md); the GitHub shim runs every runner registered for
# github_url.
#
# Each shim registers a service, in Consul (-var service_provider=consul,
# the Nomad agents need a consul block) or in Nomad's own catalog (the
# default), tagged with its forge, instance and runner name, and checked on
# /healthz. A shim for another forge is another group shaped like
# "forgejo": its own service name, forge tag and task args.
#
# The shim keeps no state of its own: its runner credentials live in a Nomad
# Variable, its in-flight jobs are the dispatched Nomad jobs. Secrets reach
# it only through the template below (the job's own Variable, readable by
# its workload identity), never as job variables or meta.

variable "forgejo_url" {
  type        = string
  default     = ""
  description = "root URL of the Forgejo or Gitea instance (empty: no Forgejo shim)"
}

variable "github_url" {
  type        = string
  default     = ""
  description = "the GitHub URL the GitHub runners are registered for (empty: no GitHub shim)"
}

variable "runner_name" {
  type    = string
  default = "solstice"
}

variable "capacity" {
  type        = number
  default     = 4
  description = "most forge tasks in flight (more wait in Nomad's queue)"
}

variable "service_provider" {
  type        = string
  default     = "nomad"
  description = "where the shim's service registers: consul or nomad"

  validation {
    condition     = contains(["consul", "nomad"], var.service_provider)
    error_message = "The service_provider must be \"consul\" or \"nomad\"."
  }
}

variable "solstice_binary" {
  type    = string
  default = "/usr/local/bin/solstice"
}

variable "namespace" {
  type        = string
  default     = "default"
  description = "the Nomad namespace of the shims, the label parent jobs and their Variables"
}

variable "nomad_addr" {
  type    = string
  default = "http://127.0.0.1:4646"
}

job "solstice-runners" {
  type      = "service"
  namespace = var.namespace

  group "forgejo" {
    count = var.forgejo_url == "" ? 0 : 1

    network {
      port "http" {}
    }

    service {
      name     = "solstice-forgejo"
      provider = var.service_provider
      port     = "http"
      tags     = ["solstice", "forge=forgejo", "instance=${var.forgejo_url}", "runner=${var.runner_name}"]

      # Unhealthy while the forge or Nomad cannot be reached (the shim
      # probes Nomad every 10s even when idle). No check_restart: a
      # restarted shim reaches neither any better.
      check {
        type     = "http"
        path     = "/healthz"
        interval = "10s"
        timeout  = "3s"
      }
    }

    restart {
      attempts = 10
      interval = "10m"
      delay    = "15s"
      mode     = "delay"
    }

    task "shim" {
      # A single static binary that talks to Nomad's API: no isolation to
      # gain from exec, and raw_exec needs no chroot of the binary's path.
      driver = "raw_exec"

      config {
        command = var.solstice_binary
        args = [
          "forgejo", "run",
          "--url", var.forgejo_url,
          "--name", var.runner_name,
          "--capacity", "${var.capacity}",
          "--listen", "${NOMAD_ADDR_http}",
        ]
      }

      env {
        NOMAD_ADDR = var.nomad_addr
      }

      # The shim's Nomad token (NOMAD_TOKEN): its workload identity, with
      # the policy `solstice jobs sync` attaches to this job. Nomad sets
      # NOMAD_NAMESPACE for the task too.
      identity {
        env = true
      }

      template {
        destination = "secrets/solstice.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
        {{- with nomadVar "nomad/jobs/solstice-runners" }}
        {{- with index .ItemsMap "nomad_token" }}
        NOMAD_TOKEN={{ . }}
        {{- end }}
        SOLSTICE_FORGEJO_REGISTRATION_TOKEN={{ .forgejo_registration_token }}
        {{- end }}
        EOT
      }

      resources {
        cpu    = 200
        memory = 128
      }
    }
  }

  group "github" {
    count = var.github_url == "" ? 0 : 1

    network {
      port "http" {}
    }

    service {
      name     = "solstice-github"
      provider = var.service_provider
      port     = "http"
      tags     = ["solstice", "forge=github", "instance=${var.github_url}"]

      # Unhealthy while GitHub or Nomad cannot be reached.
      check {
        type     = "http"
        path     = "/healthz"
        interval = "10s"
        timeout  = "3s"
      }
    }

    restart {
      attempts = 10
      interval = "10m"
      delay    = "15s"
      mode     = "delay"
    }

    task "shim" {
      driver = "raw_exec"

      config {
        command = var.solstice_binary
        args = [
          "github", "run",
          "--url", var.github_url,
          "--listen", "${NOMAD_ADDR_http}",
        ]
      }

      env {
        NOMAD_ADDR = var.nomad_addr
      }

      # The shim's Nomad token (NOMAD_TOKEN): its workload identity, with
      # the policy `solstice jobs sync` attaches to this job. Nomad sets
      # NOMAD_NAMESPACE for the task too.
      identity {
        env = true
      }

      template {
        destination = "secrets/solstice.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
        {{- with nomadVar "nomad/jobs/solstice-runners" }}
        {{- with index .ItemsMap "nomad_token" }}
        NOMAD_TOKEN={{ . }}
        {{- end }}
        {{- end }}
        EOT
      }

      resources {
        cpu    = 200
        memory = 128
      }
    }
  }
}
