"""The embedded demo dataset: a synthetic internal knowledge base in BEIR format.

``write_demo_dataset(out, seed)`` writes, purely from the vocabulary and templates in this
file and a seed, the knowledge base of a fictional company ("Corvane"): about 2,000 short
documents in five subdomains, 1,500 queries split into train/dev/test and graded qrels.

The data is built to show the failures that domain fine-tuning fixes:

* **codenames** -- internal services are mostly called by codename ("Halcyon") in the
  documents, while queries often use the plain description ("invoice reconciliation
  service") or a nickname; the mapping is the same in every split, so it can be learnt;
* **lookalikes** -- hardware families ("Vortex 200/300/500/700 edge gateway") whose
  documents share one template and differ by the model number and its key facts;
* **colloquial** queries ("customer got charged twice") against formal procedure pages
  ("Procedure for refunding duplicate card authorisations");
* dated incident reports and change notices that only differ by date and detail.

Relevance is graded: 2 is the exact document; 1 is partially relevant (an older revision,
the service overview page or the product family overview).

One subdomain, :data:`HELD_OUT_SUBDOMAIN`, is held out: none of its queries is in train or
dev, and none of its documents is judged there; all its queries are in test.

The output is deterministic: the same seed gives byte-identical files. Only
``random.Random(seed)``, lists and sorted output are used.
"""

from __future__ import annotations

import datetime as _dt
import json
import random
from pathlib import Path
from typing import Any

__all__ = ["HELD_OUT_SUBDOMAIN", "POOL_FOLDER", "POOL_RELEVANCE", "SUBDOMAINS", "write_demo_dataset"]

COMPANY = "Corvane"
HELD_OUT_SUBDOMAIN = "storage"

SPLIT_SIZES = {"train": 1000, "dev": 200, "test": 300}
HELD_OUT_QUERIES = 70  # of the 300 test queries
QRELS_HEADER = "query-id\tcorpus-id\tscore\n"
# the unlabelled query pool of live traffic (``_write_pool``): no split, no qrels
POOL_FOLDER = "pool"
POOL_RELEVANCE = "hidden-relevance.tsv"
POOL_PER_SUBDOMAIN = 300
DATE_FIRST = _dt.date(2022, 1, 1)
DATE_LAST = _dt.date(2025, 12, 31)
MIN_WORDS, MAX_WORDS = 30, 90

# Query mix per subdomain (fractions of that subdomain's queries, by the kind of target).
QUERY_MIX = {
    "aspect": 0.47,
    "overview": 0.06,
    "product": 0.16,
    "procedure": 0.11,
    "incident": 0.11,
    "change": 0.09,
}

MONTHS = [
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday"]
REGIONS = ["eu-west", "eu-central", "us-east", "us-west", "ap-south", "ap-east"]
LANGUAGES = ["Go", "Java", "Kotlin", "Python", "Rust", "TypeScript"]
COLOURS = ["amber", "red", "blue", "green", "white"]

# --------------------------------------------------------------------------------------
# Vocabulary per subdomain
# services: (codename, plain description, nicknames, objects it handles)
# families: lookalike hardware; facts are (label, unit, query word, one value per variant)
# procedures: (formal title, formal body, colloquial queries)
# --------------------------------------------------------------------------------------

SUBDOMAINS: dict[str, dict[str, Any]] = {
    "billing": {
        "teams": ["Billing Platform", "Finance Operations", "Revenue Engineering"],
        "services": [
            ("Halcyon", "invoice reconciliation service",
             ["the system that matches invoices to incoming payments", "invoice matching"], "invoices"),
            ("Tallow", "payment retry scheduler",
             ["the job that re-attempts failed card payments", "failed payment retries"], "payment attempts"),
            ("Quillon", "tax calculation engine",
             ["the thing that works out VAT and sales tax", "tax maths"], "tax quotes"),
            ("Marrow", "usage metering pipeline",
             ["what counts how much each customer uses", "usage counting"], "usage events"),
            ("Bramble", "dunning email service",
             ["the reminder emails we send when customers don't pay", "late payment reminders"], "reminder emails"),
            ("Ferrule", "credit note generator",
             ["the tool that makes refund paperwork", "credit notes"], "credit notes"),
            ("Gannet", "subscription plan catalogue",
             ["the list of pricing plans and what they cost", "price list"], "plan definitions"),
            ("Pellucid", "revenue recognition ledger",
             ["the accounting books where revenue gets booked", "revenue books"], "journal entries"),
        ],
        "families": [
            {"name": "Tillpoint", "kind": "card terminal", "variants": ["T3", "T4", "T5", "T6"],
             "facts": [("transactions per hour", "", "how many payments per hour can the {F} {V} take", [300, 450, 600, 900]),
                       ("battery life", "hours", "how long does the {F} {V} battery last", [9, 12, 16, 20])]},
            {"name": "Coinbay", "kind": "cash recycler", "variants": ["C1", "C2", "C3"],
             "facts": [("note capacity", "notes", "how many notes fit in the {F} {V}", [1200, 2500, 4000]),
                       ("dispense speed", "notes per second", "how fast does the {F} {V} pay out cash", [4, 7, 10])]},
        ],
        "procedures": [
            ("Procedure for refunding duplicate card authorisations",
             "When a card is authorised twice for the same order, the analyst voids the second authorisation and issues a refund through the acquirer portal within five business days.",
             ["how do I get my money back for a double charge", "customer got charged twice for one order what now",
              "someone paid two times by mistake", "undo an accidental second payment"]),
            ("Policy on amending issued invoices",
             "Issued invoices are immutable. Corrections are made by raising a credit note against the original document and issuing a replacement with a new number.",
             ["can I fix a typo on a bill I already sent", "change the address on an invoice that went out",
              "edit an invoice after sending it", "wrong company name on the bill we emailed"]),
            ("Handling of chargeback disputes",
             "Upon receipt of a chargeback notification, assemble evidence of delivery and cardholder consent and submit it to the card scheme before the response deadline.",
             ["a customer complained to their bank and the bank took the money back", "fight a card dispute",
              "bank reversed a payment we already received", "customer says they never bought it and called their bank"]),
            ("Tax exemption certificate intake",
             "Customers claiming exemption must supply a valid certificate; billing operations verify it and flag the account as exempt prior to the next invoice run.",
             ["customer says they don't have to pay sales tax", "charity wants no VAT on their bill",
              "stop adding tax for a nonprofit", "school says it is tax free"]),
            ("Currency conversion rate policy",
             "Amounts in non-base currencies are converted using the published reference rate captured at 16:00 UTC on the document date.",
             ["what exchange rate do we use for euro bills", "which fx rate goes on a foreign invoice",
              "why is the dollar amount different from what I expected", "money conversion for customers abroad"]),
            ("Write-off approval for uncollectible receivables",
             "Receivables outstanding beyond 180 days may be written off following approval by the financial controller and documentation of collection attempts.",
             ["customer never paid and we gave up how do I clear it", "get rid of old debt we will never collect",
              "remove a balance nobody is going to pay", "stop chasing a bill from years ago"]),
            ("Proration of mid-cycle subscription changes",
             "When a subscription tier is modified during a period, charges are apportioned by the remaining days and reflected on the subsequent statement.",
             ["customer upgraded halfway through the month how much do they pay", "switching plans in the middle of the month cost",
              "partial month charge after a downgrade", "they moved to a cheaper plan on the 15th"]),
            ("Payment terms extension requests",
             "Requests to extend net payment terms beyond 30 days require a credit assessment and sign-off from the accounts receivable manager.",
             ["client wants more time to pay", "can a customer pay in 60 days instead of 30",
              "let a customer settle later than usual", "big customer asking for longer to pay us"]),
            ("Reissuing lost or undelivered invoices",
             "Copies of previously issued documents may be regenerated from the billing portal; the original number and date are preserved.",
             ["customer never got their bill in the email", "send the invoice pdf again",
              "client lost the bill and wants another copy", "resend last month's statement"]),
            ("Suspension of accounts for non-payment",
             "Accounts with balances overdue by more than 45 days are placed in restricted mode following two written notices.",
             ["when do we cut off customers who don't pay", "shut off service for an unpaid account",
              "how late can someone be before we block them", "turn off a customer that owes us money"]),
        ],
    },
    "networking": {
        "teams": ["Network Engineering", "Edge Platform", "Connectivity"],
        "services": [
            ("Kestrel", "internal DNS resolver",
             ["the thing that turns hostnames into addresses", "name lookups"], "lookups"),
            ("Meridian", "global load balancer",
             ["what spreads traffic across regions", "traffic steering"], "connections"),
            ("Sable", "VPN concentrator",
             ["remote access for laptops working from home", "the work from home tunnel"], "tunnels"),
            ("Wicket", "egress firewall policy service",
             ["the rules for traffic leaving our network", "outbound blocking"], "policy rules"),
            ("Corrie", "service mesh control plane",
             ["the sidecar proxy configuration system", "mesh config"], "proxy configs"),
            ("Lattice", "IP address management system",
             ["the inventory that hands out IP addresses", "address bookkeeping"], "address leases"),
            ("Tern", "CDN edge cache",
             ["the servers that cache our website close to users", "website caching"], "cached objects"),
            ("Fathom", "packet capture service",
             ["the tool that records network traffic for debugging", "traffic recording"], "capture files"),
        ],
        "families": [
            {"name": "Vortex", "kind": "edge gateway", "variants": ["200", "300", "500", "700"],
             "facts": [("throughput", "Gbit/s", "how fast is the {F} {V}", [10, 25, 40, 100]),
                       ("concurrent sessions", "thousand", "how many sessions can the {F} {V} handle", [250, 500, 1000, 4000])]},
            {"name": "Lumen", "kind": "access switch", "variants": ["L24", "L48", "L96"],
             "facts": [("port count", "ports", "how many ports does the {F} {V} have", [24, 48, 96]),
                       ("PoE budget", "watts", "how much power over ethernet does the {F} {V} give", [370, 740, 1440])]},
        ],
        "procedures": [
            ("Procedure for requesting egress policy exceptions",
             "Exceptions to the default egress policy are requested through a change record specifying source, destination, port and business justification; security engineering reviews each request.",
             ["my app can't reach an outside website how do I get it opened up", "need a port opened to the internet",
              "unblock an external site for our server", "our job can't talk to a partner's api"]),
            ("Remote access enrolment for contractors",
             "External contractors receive remote access only after sponsor approval, device compliance attestation and acceptance of the acceptable use policy.",
             ["new freelancer needs to get onto the office network from home", "give an outside consultant remote access",
              "let a temp worker connect from their laptop", "agency staff need to log in remotely"]),
            ("Allocation of static IP addresses",
             "Static addresses are assigned from the reserved pool upon submission of a request identifying the host, subnet and accountable owner.",
             ["I need a fixed address for my box that never changes", "get a permanent ip for a server",
              "my machine's ip keeps changing", "reserve an ip for a printer"]),
            ("Public DNS record change control",
             "Modifications to externally resolvable records require peer review and are applied during the weekly change window.",
             ["point our website name at a new server", "update where our domain goes",
              "add a subdomain for a marketing site", "change the web address to a new host"]),
            ("Guest wireless network provisioning",
             "Visitor connectivity is provided on an isolated segment with daily rotating credentials published at reception.",
             ["wifi password for visitors", "how do guests get online in the office",
              "client coming in tomorrow needs internet", "internet for people visiting us"]),
            ("Bandwidth reservation for bulk data transfers",
             "Transfers exceeding five terabytes between sites must be scheduled with a bandwidth reservation outside core business hours.",
             ["copying a huge amount of data between offices is really slow", "need a fat pipe for a big upload",
              "moving tons of files to another site", "big copy job is eating everyone's internet"]),
            ("Decommissioning of network segments",
             "Segments are retired after confirming no active leases remain, removing routing entries and archiving the associated documentation.",
             ["we don't use this subnet anymore how do we get rid of it", "shut down an old vlan",
              "clean up a network nobody uses", "delete an unused part of the network"]),
            ("Renewal of certificates terminated at the edge",
             "Certificates presented by public endpoints are renewed thirty days before expiry and deployed to every point of presence.",
             ["website says the padlock expired", "browser warns our site is not secure",
              "https warning on our homepage", "customers see a scary security error on our site"]),
            ("Cross-region latency investigation procedure",
             "Latency complaints between regions are investigated by collecting path traces, comparing against baseline round-trip times and engaging the transit provider.",
             ["why is the app so laggy from the singapore office", "things are slow between continents",
              "pages take ages to load for the asia team", "everything feels sluggish from overseas"]),
            ("Physical port activation in office locations",
             "Wall outlets are patched and enabled on request by facilities networking after the asset tag of the connecting device is recorded.",
             ["the socket at my desk doesn't give me internet", "ethernet jack under my desk is dead",
              "plugged in a cable and nothing works", "wired connection not working at my new desk"]),
        ],
    },
    "storage": {
        "teams": ["Storage Infrastructure", "Data Platform", "Backup Operations"],
        "services": [
            ("Cairn", "object storage cluster",
             ["where we keep files in buckets", "the bucket store"], "objects"),
            ("Silt", "cold archive tier",
             ["the deep freeze for old data", "long-term archive"], "archives"),
            ("Ember", "block volume service",
             ["the disks attached to virtual machines", "VM disks"], "volumes"),
            ("Rookery", "database backup orchestrator",
             ["the thing that takes nightly database backups", "db backups"], "backup jobs"),
            ("Dray", "file share gateway",
             ["the shared network drive", "team drives"], "file shares"),
            ("Quarry", "data lake ingestion service",
             ["the loader that pulls data into the lake", "lake loading"], "ingestion batches"),
            ("Loam", "snapshot scheduler",
             ["the job that takes point in time copies of disks", "disk snapshots"], "snapshots"),
            ("Pike", "storage quota manager",
             ["what limits how much space each team can use", "space limits"], "quotas"),
        ],
        "families": [
            {"name": "Keel", "kind": "storage array", "variants": ["S10", "S20", "S40", "S80"],
             "facts": [("raw capacity", "TB", "how much data can the {F} {V} hold", [120, 240, 480, 960]),
                       ("drive bays", "bays", "how many drives fit in the {F} {V}", [12, 24, 48, 96])]},
            {"name": "Driftwood", "kind": "backup appliance", "variants": ["D2", "D4", "D8"],
             "facts": [("ingest rate", "TB per hour", "how fast can the {F} {V} back up", [2, 4, 8]),
                       ("retained restore points", "points", "how many restore points does the {F} {V} keep", [30, 60, 120])]},
        ],
        "procedures": [
            ("Restoration of deleted objects from versioned buckets",
             "Objects removed from versioned buckets can be recovered by promoting the most recent non-current version within the retention window.",
             ["I accidentally deleted a file from the bucket can I get it back", "undo a delete in cloud storage",
              "someone wiped a folder of files by mistake", "recover something I removed yesterday"]),
            ("Capacity expansion requests for shared volumes",
             "Requests to enlarge shared volumes require a forecast of growth and cost centre approval before the allocation is increased.",
             ["our shared drive is full", "need more space on the team disk",
              "ran out of room for our files", "disk almost out of space what now"]),
            ("Legal hold placement on stored records",
             "When counsel issues a preservation notice, affected records are placed under legal hold and exempted from all deletion schedules.",
             ["lawyers say we can't delete anything for this customer", "freeze data because of a lawsuit",
              "keep everything about a court case", "stop automatic deletion for an investigation"]),
            ("Encryption key rotation for data at rest",
             "Keys protecting persisted data are rotated annually and immediately upon suspected compromise, with re-wrapping of data keys.",
             ["how often do we change the keys that scramble our disks", "when do we swap the secret keys for stored data",
              "someone may have leaked the disk key", "new secret for encrypted drives"]),
            ("Transfer of bucket ownership between teams",
             "Ownership transfers are recorded in the asset register and require acknowledgement from both the releasing and receiving managers.",
             ["the team that owned this storage left who takes it over", "hand our bucket to another team",
              "move our files to a different group's account", "nobody owns this bucket anymore"]),
            ("Retrieval of archived datasets",
             "Archived datasets are restored to a staging location within twelve hours of an approved retrieval request; expedited retrieval incurs additional cost.",
             ["getting old data back out of storage takes forever", "pull something out of the archive",
              "I need files from three years ago", "bring back data we stored long ago"]),
            ("Secure disposal of decommissioned drives",
             "Drives leaving service are cryptographically erased, physically shredded by an approved vendor and recorded with a certificate of destruction.",
             ["what do we do with old hard disks", "throw away broken disks safely",
              "getting rid of old drives from a server", "dump used disks without leaking data"]),
            ("Public access review for storage buckets",
             "Buckets permitting anonymous reads are reviewed monthly; exposure without documented justification is revoked by the platform team.",
             ["can anyone on the internet see our files", "check if a bucket is open to the world",
              "make sure our stuff isn't public", "strangers downloading our files"]),
            ("Backup verification through restore testing",
             "Each protected system undergoes a quarterly restore test, the outcome of which is recorded in the resilience register.",
             ["how do we know our backups actually work", "test that we can really get data back",
              "practice recovering from a backup", "proof that the copies are good"]),
            ("Cost allocation tagging for storage resources",
             "Every persistent resource must carry cost centre and owner tags; untagged resources are reported to finance and may be reclaimed.",
             ["who is paying for all this storage", "figure out which team's disks cost so much",
              "our storage bill is huge who is using it", "label our buckets so finance knows whose they are"]),
        ],
    },
    "identity": {
        "teams": ["Identity Engineering", "Access Governance", "Security Operations"],
        "services": [
            ("Bastion", "single sign-on portal",
             ["the page where you log in once for every app", "the login page"], "sign-in sessions"),
            ("Warden", "access review workflow",
             ["the tool where managers confirm who should keep access", "access checks"], "review campaigns"),
            ("Glyph", "secrets vault",
             ["where passwords and api keys for apps are stored", "the password safe"], "secrets"),
            ("Lintel", "directory sync connector",
             ["what copies accounts from the HR system into the directory", "HR sync"], "account records"),
            ("Sextant", "multi-factor authentication service",
             ["the second login step with codes on your phone", "two factor prompts"], "verification challenges"),
            ("Hasp", "privileged access broker",
             ["the way admins get temporary root rights", "admin elevation"], "elevation grants"),
            ("Mantle", "service account issuer",
             ["the thing that creates robot accounts for apps", "machine accounts"], "service accounts"),
            ("Rune", "internal certificate authority",
             ["what signs our internal TLS certificates", "internal certs"], "certificates"),
        ],
        "families": [
            {"name": "Sentinel", "kind": "hardware security key", "variants": ["K2", "K3", "K4", "K5"],
             "facts": [("credential slots", "slots", "how many accounts can the {F} {V} store", [8, 16, 25, 32]),
                       ("rated insertions", "thousand", "how long does the {F} {V} last", [50, 100, 200, 300])]},
            {"name": "Portcullis", "kind": "badge reader", "variants": ["P1", "P2", "P3"],
             "facts": [("read range", "centimetres", "how close do I need to hold a badge to the {F} {V}", [3, 6, 10]),
                       ("offline cache", "badges", "how many badges does the {F} {V} remember offline", [500, 2000, 10000])]},
        ],
        "procedures": [
            ("Procedure for revoking access of departing employees",
             "On the leaving date, the manager triggers deprovisioning, which disables directory accounts, revokes tokens and reclaims licences within four hours.",
             ["someone quit today how do we lock them out", "turn off accounts for a person who left",
              "colleague was fired make sure they can't log in", "remove a leaver from everything"]),
            ("Self-service password reset eligibility",
             "Employees enrolled in verification may reset credentials through the portal; others must contact the service desk with photo identification.",
             ["I forgot my password and I'm locked out", "can't log in forgot password",
              "change my password without calling IT", "locked out after too many tries"]),
            ("Enrolment of replacement authenticator devices",
             "A replacement authenticator is registered after identity proofing by the service desk; the former device is invalidated immediately.",
             ["I got a new phone and my login codes are gone", "lost my phone with the 2fa app",
              "my authenticator app disappeared", "broke my phone now I can't get sign in codes"]),
            ("Temporary elevation of administrative privileges",
             "Administrative rights are granted for a maximum of four hours upon justification and peer approval; all activity is recorded.",
             ["I need admin rights for an hour to install something", "get root for a little while",
              "how do I become admin on my laptop temporarily", "need superuser to fix a server"]),
            ("Quarterly entitlement certification",
             "Each quarter, managers attest to the continued necessity of every entitlement held by their reports; unattested entitlements are removed.",
             ["manager has to check who still needs what every few months", "review who has access to my team's stuff",
              "the thing where bosses confirm permissions", "periodic check of people's rights"]),
            ("Onboarding account provisioning timeline",
             "Accounts for new joiners are created three business days before the start date once the hiring record is finalised.",
             ["new starter on monday will their login be ready", "when does a new hire get their account",
              "new colleague has no email yet", "set up logins for someone joining next week"]),
            ("Shared mailbox and group ownership transfer",
             "Ownership of shared mailboxes and distribution groups must be reassigned before the current owner's departure is processed.",
             ["the person who owned our team email list left", "who can manage our shared inbox now",
              "take over a group mailbox", "change who controls the team mailing list"]),
            ("Exception process for password policy",
             "Systems unable to meet credential complexity requirements require a documented exception, compensating controls and annual renewal.",
             ["our old machine can't handle long passwords", "legacy app only allows 8 character passwords",
              "can we skip the password rules for one system", "ancient device won't take special characters"]),
            ("Emergency break-glass account usage",
             "Break-glass credentials are retrieved from the sealed store only during a declared incident with two approvers and are rotated afterwards.",
             ["everything is locked out and we need to get in right now", "login is down how do admins get in",
              "emergency way to get into systems", "nobody can authenticate and we must fix it now"]),
            ("Name change in directory records",
             "Legal name changes are applied to directory records upon receipt of supporting documentation by people operations.",
             ["I got married and want my new surname on my email", "update my name everywhere",
              "my name is spelled wrong in the company directory", "change my display name"]),
        ],
    },
    "observability": {
        "teams": ["Observability", "Site Reliability", "Production Engineering"],
        "services": [
            ("Lantern", "metrics time-series database",
             ["where all the graphs get their numbers from", "metrics storage"], "samples"),
            ("Heron", "log aggregation pipeline",
             ["the system that collects logs from every server", "log shipping"], "log lines"),
            ("Beacon", "alert routing service",
             ["what decides who gets paged", "pager routing"], "alerts"),
            ("Tracery", "distributed tracing collector",
             ["the thing that follows a request across services", "request tracing"], "spans"),
            ("Periscope", "synthetic uptime checker",
             ["the robot that pings our sites to see if they are up", "uptime pings"], "probes"),
            ("Almanac", "status page publisher",
             ["what updates the public page that says if we are down", "status updates"], "status posts"),
            ("Plumb", "SLO error budget calculator",
             ["the tool that tracks how much downtime we have left", "error budgets"], "budget reports"),
            ("Spindle", "continuous profiling agent",
             ["the thing that shows which code uses the most CPU", "cpu profiling"], "profiles"),
        ],
        "families": [
            {"name": "Argus", "kind": "network probe appliance", "variants": ["A1", "A2", "A3", "A4"],
             "facts": [("monitored links", "links", "how many links can the {F} {V} watch", [4, 8, 16, 32]),
                       ("capture buffer", "GB", "how much traffic can the {F} {V} buffer", [64, 128, 256, 512])]},
            {"name": "Lookout", "kind": "display wall controller", "variants": ["W1", "W2", "W3"],
             "facts": [("screen outputs", "screens", "how many screens can the {F} {V} drive", [4, 9, 16]),
                       ("refresh interval", "seconds", "how often does the {F} {V} refresh", [30, 15, 5])]},
        ],
        "procedures": [
            ("Alert threshold adjustment requests",
             "Proposals to modify paging thresholds must include a review of the preceding thirty days of signal history and approval by the service owner.",
             ["this alert keeps waking me up for nothing", "pager is way too noisy at night",
              "stop getting woken up by false alarms", "alert goes off all the time and it's fine"]),
            ("Postmortem authoring standard",
             "A blameless review is drafted within five business days of any severity one or two incident, covering timeline, contributing factors and actions.",
             ["what do I write up after an outage", "how to do the write-up when stuff broke",
              "template for explaining what went wrong", "we had downtime do I need a report"]),
            ("Onboarding a service to centralised logging",
             "Services emit structured records to standard output; the platform agent forwards them once the service is registered in the catalogue.",
             ["how do I get my app's logs somewhere searchable", "can't find my program's output anywhere",
              "send my service logs to the central place", "where do I look at logs for my new app"]),
            ("Dashboard ownership and archival",
             "Panels without a named owner or without views for ninety days are archived; owners receive notice two weeks in advance.",
             ["there are tons of old graphs nobody uses", "my charts disappeared",
              "clean up unused monitoring screens", "who deleted my graphs page"]),
            ("Metric cardinality limits",
             "Each metric may carry at most ten thousand distinct label combinations; series beyond the limit are rejected at ingestion.",
             ["my numbers got dropped because I used user ids as labels", "too many unique tag values",
              "some of my stats are missing", "charts stopped updating after I added customer names as tags"]),
            ("On-call handover protocol",
             "At rotation change, the outgoing engineer documents open incidents, silenced signals and pending follow-ups in the handover record.",
             ["what do I tell the next person when my pager week ends", "passing the pager to a colleague",
              "end of my on-call shift what do I do", "swap duty with the next engineer"]),
            ("Customer-facing status communication",
             "A public notice is issued within fifteen minutes of a confirmed customer-impacting incident and updated at least every thirty minutes.",
             ["when do we tell customers the site is broken", "who posts about downtime publicly",
              "how fast must we announce an outage", "customers asking if we are down"]),
            ("Log retention exemption requests",
             "Extended retention beyond the standard thirty days requires a documented regulatory or audit basis and cost approval.",
             ["I need to keep logs longer than a month for an audit", "logs get deleted too soon",
              "save old logs for a compliance check", "can we hold on to last year's logs"]),
            ("Service level objective definition",
             "Objectives are expressed as the proportion of successful requests over a rolling twenty-eight day window and reviewed with stakeholders quarterly.",
             ["how do I decide how reliable my service should be", "what uptime target should my app have",
              "set a goal for how often my api may fail", "how much downtime is acceptable"]),
            ("Paging escalation for unacknowledged alerts",
             "Notifications not acknowledged within ten minutes are escalated to the secondary responder and subsequently to the duty manager.",
             ["what happens if nobody answers the page", "on-call didn't respond who gets called next",
              "alert was ignored what then", "nobody picked up the pager"]),
        ],
    },
}

# --------------------------------------------------------------------------------------
# Templates for service documents. {C} codename, {O} objects, {T} team, numbers {n}/{m}...
# Each aspect: titles, intros, details, queries ({R} is how the query refers to the service)
# --------------------------------------------------------------------------------------

ASPECTS: list[dict[str, Any]] = [
    {"key": "restart",
     "titles": ["{C} restart runbook", "Runbook: restarting {C} workers", "Recovering a stalled {C}"],
     "intros": ["Use this runbook when {C} stops processing {O}.",
                "{C} occasionally stalls after a dependency failover and needs a controlled restart.",
                "Follow these steps if the {C} backlog keeps growing and workers look idle."],
     "details": ["Drain the intake queue, run `{cmd} restart --graceful` and wait {n} minutes for the backlog to clear.",
                 "Restart one zone at a time and never cycle more than {n} replicas at once.",
                 "Check the heartbeat panel first; if it is flat for {n} minutes, restart the leader before the followers."],
     "queries": ["how do I restart {R}", "{R} stopped processing {O} what do I do", "steps to recover {R} after it hangs",
                 "bring {R} back up safely", "{R} is stuck"]},
    {"key": "oncall",
     "titles": ["{C} on-call and escalation", "Who to contact about {C}", "{C} ownership and paging"],
     "intros": ["{C} is owned by the {T} team.", "Production support for {C} sits with {T}.",
                "Operational ownership of {C} belongs to {T}."],
     "details": ["Page the primary through the {T} rotation; without an answer in {n} minutes escalate to the secondary, then the engineering manager.",
                 "Business-hours questions go to the team channel; out of hours, page the rotation and expect a reply within {n} minutes."],
     "queries": ["who is on call for {R}", "who do I page when {R} breaks", "which team owns {R}", "escalation path for {R}",
                 "who supports {R}"]},
    {"key": "limits",
     "titles": ["{C} rate limits and quotas", "{C} throttling behaviour", "Request limits for {C}"],
     "intros": ["{C} protects itself with per-client limits.", "Callers of {C} are throttled to keep latency predictable.",
                "This page lists the request limits enforced by {C}."],
     "details": ["Each client may send {n} requests per second with a burst of {m}; excess calls receive HTTP 429.",
                 "The default allowance is {n} calls per second; teams can ask for up to {m} with a capacity review.",
                 "Clients over {n} requests per second get a Retry-After header of {m} seconds."],
     "queries": ["what is the rate limit on {R}", "{R} keeps returning 429 too many requests",
                 "how many calls per second does {R} allow", "raise my quota for {R}", "{R} is throttling me"]},
    {"key": "retention",
     "titles": ["{C} data retention", "Retention schedule for {C}", "How long {C} keeps data"],
     "intros": ["{C} stores {O} under the company retention standard.",
                "Retention for {C} balances audit needs against storage cost.",
                "This schedule applies to every environment running {C}."],
     "details": ["Records are kept for {n} days in the hot store and {m} months in the archive before deletion.",
                 "After {n} days records move to compressed storage and are purged after {m} months.",
                 "Personal data is removed after {n} days; aggregates are retained for {m} months."],
     "queries": ["how long does {R} keep {O}", "retention period of {R}", "when does {R} delete old {O}",
                 "is data in {R} ever purged"]},
    {"key": "deploy",
     "titles": ["Deploying {C}", "{C} release process", "Shipping changes to {C}"],
     "intros": ["Changes to {C} ship through the standard delivery pipeline.",
                "{C} follows a weekly release train.", "Releases of {C} are gated by automated checks."],
     "details": ["Releases go out on {W}s; a canary takes {n}% of traffic for {m} minutes before promotion.",
                 "Merge to main triggers a build; production promotion needs one approval and a {m} minute bake at {n}% traffic.",
                 "Hotfixes may skip the train on {W}s but still need a {m} minute canary."],
     "queries": ["how do I deploy a new version of {R}", "release schedule for {R}",
                 "how do changes to {R} get to production", "ship a hotfix to {R}"]},
    {"key": "config",
     "titles": ["{C} configuration reference", "{C} settings", "Tuning {C}"],
     "intros": ["{C} reads its settings from environment variables at start-up.",
                "Most behaviour of {C} can be tuned without a code change.",
                "This reference lists the settings of {C} that operators change most often."],
     "details": ["The key settings are {E}_TIMEOUT_MS (default {n}) and {E}_MAX_BATCH (default {m}).",
                 "Set {E}_WORKERS to change concurrency (default {m}); {E}_TIMEOUT_MS defaults to {n}.",
                 "{E}_RETRY_LIMIT defaults to {m} and {E}_TIMEOUT_MS to {n}; both reload on SIGHUP."],
     "queries": ["which settings does {R} read", "change the timeout of {R}", "default batch size for {R}",
                 "config options for {R}", "tune {R} concurrency"]},
    {"key": "alerts",
     "titles": ["{C} alert guide", "Understanding {C} alerts", "{C} alert reference"],
     "intros": ["Alerts for {C} are defined as code next to the service.",
                "This guide explains what each {C} alert means and how urgent it is.",
                "Most {C} pages are caused by slow {O}."],
     "details": ["{C}Lag fires when processing delay exceeds {n} seconds for {m} minutes; it pages only out of hours.",
                 "{C}ErrorRate fires above {n} percent failed requests over {m} minutes and always pages.",
                 "{C}Saturation warns at {n} percent utilisation and pages at {m} percent."],
     "queries": ["what does the lag alert on {R} mean", "{R} alert fired is it serious", "alert threshold for {R}",
                 "why did I get paged for {R}"]},
    {"key": "access",
     "titles": ["Requesting access to {C}", "{C} permissions model", "Access to {C}"],
     "intros": ["Access to {C} follows least privilege.", "Permissions for {C} are managed through directory groups.",
                "Nobody gets standing write access to {C}."],
     "details": ["Read access comes with the {G} group; write access requires approval from a {T} lead.",
                 "Request the {G} group in the access portal; approvals usually take {n} hours.",
                 "Operators join {G}; service credentials are issued per team and expire after {n} days."],
     "queries": ["how do I get access to {R}", "request write permissions for {R}", "which group gives read access to {R}",
                 "I can't see anything in {R}"]},
    {"key": "architecture",
     "titles": ["{C} architecture overview", "How {C} works", "{C} design notes"],
     "intros": ["{C} is a {L} service.", "{C} was rewritten in {L} in 2022.", "{C} runs as a stateless {L} deployment."],
     "details": ["It consumes {O} from {D1} and writes results to {D2}.",
                 "Upstream it depends on {D1}; downstream, {D2} reads its output.",
                 "State lives in a replicated database; {D1} feeds it and {D2} consumes its events."],
     "queries": ["what does {R} depend on", "how is {R} built", "which systems feed {R}", "what language is {R} written in"]},
    {"key": "migration",
     "titles": ["{C} v{v} migration guide", "Moving to the {C} v{v} API", "{C} v{u} deprecation"],
     "intros": ["The v{u} interface of {C} is deprecated.", "{C} v{v} replaces the v{u} endpoints.",
                "Clients of {C} must move to v{v}."],
     "details": ["The v{u} endpoints are retired on {DATE}; replace the legacy id field with the new reference field.",
                 "After {DATE} calls to v{u} fail; the v{v} client library handles pagination automatically.",
                 "Migrate before {DATE}: v{v} renames the status field and requires idempotency keys."],
     "queries": ["migrate from the old {R} api", "when is {R} v{u} turned off", "upgrade my client to the new {R} version",
                 "{R} deprecation date"]},
    {"key": "capacity",
     "titles": ["{C} capacity planning", "Scaling {C}", "{C} sizing guide"],
     "intros": ["{C} scales horizontally.", "Capacity for {C} is reviewed every quarter.",
                "Peak load on {C} comes at month end."],
     "details": ["It runs {n} replicas per region and autoscaling adds one for every {m} queued {O}.",
                 "Each replica handles about {m} {O} per second; the floor is {n} replicas.",
                 "The cluster is sized for {m} {O} per minute with {n} spare replicas."],
     "queries": ["how does {R} scale", "how many instances of {R} run", "add capacity to {R}", "{R} is overloaded at month end"]},
    {"key": "failover",
     "titles": ["{C} disaster recovery", "{C} regional failover", "{C} resilience plan"],
     "intros": ["{C} is deployed active-passive.", "Regional outages are covered by the {C} failover plan.",
                "{C} is a tier one dependency."],
     "details": ["It is active in {R1} and standby in {R2}; failover takes about {n} minutes with a recovery point of {m} minutes.",
                 "Failover to {R2} is manual and takes {n} minutes; up to {m} minutes of {O} may need replay.",
                 "Traffic moves from {R1} to {R2} automatically after {n} failed health checks."],
     "queries": ["what happens to {R} if a region goes down", "failover plan for {R}", "recovery time for {R}",
                 "is {R} multi region"]},
]

CLOSINGS = [
    "Last reviewed by {T} in {MY}.",
    "Questions go to the {T} channel.",
    "See also the {X} overview.",
    "Applies to production and staging.",
    "Changes to this page need review by a {T} maintainer.",
    "This page replaces older wiki notes.",
    "Related: {X}.",
    "Owner: {T}.",
]

INCIDENT_SYMPTOMS = [
    ("elevated error rate", "returned errors to callers", "return errors"),
    ("processing backlog", "fell behind on {O}", "fall behind"),
    ("partial outage", "was unavailable in one region", "go down"),
    ("latency spike", "responded slowly", "get slow"),
    ("stale data", "served stale {O}", "serve stale data"),
    ("failed release", "rolled back a broken release", "fail to deploy"),
]
INCIDENT_CAUSES = [
    "an expired TLS certificate on {D}", "a misconfigured feature flag", "disk exhaustion on a database replica",
    "a bad configuration push", "connection pool exhaustion", "a DNS resolution failure",
    "a memory leak introduced in release {ver}", "an outage at an upstream provider", "clock skew between nodes",
    "an unindexed query added in release {ver}", "a runaway batch job from {D}", "a network partition between zones",
]
INCIDENT_ACTIONS = [
    "add an alert on certificate expiry", "gate flags behind staged rollout", "raise disk headroom to 30 percent",
    "validate configuration in CI", "cap pool size per client", "cache lookups for five minutes",
    "add memory limits and a soak test", "add a fallback provider", "enforce time sync monitoring",
    "review query plans before release", "rate limit batch clients", "spread replicas across three zones",
]
CHANGES = [
    ("maintenance window", "undergo scheduled maintenance", "when is the {R} maintenance"),
    ("database upgrade", "have its database upgraded", "is the {R} database being upgraded"),
    ("version {ver} rollout", "move to version {ver}", "when does {R} get version {ver}"),
    ("region expansion", "start serving from {R2}", "is {R} coming to {R2}"),
    ("certificate rotation", "rotate its serving certificates", "{R} certificate rotation date"),
    ("dependency upgrade", "upgrade its client libraries", "{R} library upgrade"),
]
CHANGE_IMPACTS = [
    "no customer impact is expected", "a brief read-only period of about {n} minutes",
    "elevated latency for up to {n} minutes", "a short failover with retries", "none beyond a configuration reload",
]

PRODUCT_ASPECTS: list[dict[str, Any]] = [
    {"key": "specs",
     "titles": ["{F} {V} {K} specifications", "{F} {V} datasheet", "Technical data: {F} {V}"],
     "texts": ["The {F} {V} is a {K} rated for {f1v} {f1u} of {f1l} and {f2v} {f2u} of {f2l}. It ships with firmware {fw}.",
               "Key figures for the {F} {V} {K}: {f1l} {f1v} {f1u}; {f2l} {f2v} {f2u}. Factory firmware is {fw}."],
     "queries": ["{f1q}", "{F} {V} {f1l}", "{F} {V} {f2l}", "{F} {V} specs", "{f2q}"]},
    {"key": "firmware",
     "titles": ["Upgrading firmware on the {F} {V}", "{F} {V} firmware {fw} release notes", "{F} {V} software updates"],
     "texts": ["Firmware {fw} is the current release for the {F} {V}. Install it from the management console; the {K} reboots once and keeps its configuration.",
               "The {F} {V} must run firmware {fw} or later. Images for other {F} models are not compatible and are rejected by the bootloader."],
     "queries": ["latest firmware for the {F} {V}", "how do I update the {F} {V}", "{F} {V} firmware version",
                 "upgrade software on {F} {V}"]},
    {"key": "troubleshooting",
     "titles": ["{F} {V} status lights", "Troubleshooting the {F} {V}", "{F} {V} fault codes"],
     "texts": ["A blinking {col} light on the {F} {V} means {meaning}. Power-cycle the {K} once; if the light persists, open a hardware ticket quoting code E{code}.",
               "Fault E{code} on the {F} {V} indicates {meaning}. The front panel shows a {col} light until the fault clears."],
     "queries": ["{F} {V} blinking {col} light", "what does error E{code} mean on the {F} {V}", "{F} {V} not working",
                 "{F} {V} fault light"]},
    {"key": "lifecycle",
     "titles": ["{F} {V} end of support notice", "{F} {V} lifecycle", "Support dates for the {F} {V}"],
     "texts": ["Support for the {F} {V} ends on {eol}. Sites should plan replacement with a newer {F} model; spare parts remain available for one year.",
               "The {F} {V} reaches end of sale before {eol}, when security fixes stop. Order replacements through the hardware catalogue."],
     "queries": ["when does support end for the {F} {V}", "is the {F} {V} still supported", "{F} {V} end of life date",
                 "do we need to replace our {F} {V}"]},
]
FAULT_MEANINGS = [
    "a failed power supply", "an overheating fan tray", "a corrupted configuration store", "a lost uplink",
    "a full internal log partition", "a failed self-test",
]


# --------------------------------------------------------------------------------------


def _date_between(rng: random.Random, first: _dt.date, last: _dt.date) -> _dt.date:
    return _dt.date.fromordinal(rng.randint(first.toordinal(), last.toordinal()))


def _long_date(day: _dt.date) -> str:
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def _month_year(day: _dt.date) -> str:
    return f"{MONTHS[day.month - 1]} {day.year}"


def _words(text: str) -> int:
    return len(text.split())


class _Builder:
    """Collects documents and candidate queries for one dataset."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.docs: list[dict[str, Any]] = []
        # candidate queries by subdomain and kind: (text, style, refers_by, {doc_key: grade}, date)
        self.candidates: dict[str, dict[str, list[dict[str, Any]]]] = {}

    # ---------------------------------------------------------------- documents
    def add_doc(self, subdomain: str, kind: str, title: str, sentences: list[str], date: _dt.date,
                fillers: list[str], extra: dict[str, Any] | None = None) -> int:
        text = " ".join(sentences)
        pool = list(fillers)
        self.rng.shuffle(pool)
        while _words(title) + _words(text) < MIN_WORDS and pool:
            text = f"{text} {pool.pop()}"
        while _words(title) + _words(text) > MAX_WORDS and len(sentences) > 1:
            sentences = sentences[:-1]
            text = " ".join(sentences)
        metadata = {"subdomain": subdomain, "date": date.isoformat(), "type": kind}
        if extra:
            metadata.update(extra)
        self.docs.append({"title": title, "text": text, "metadata": metadata})
        return len(self.docs) - 1

    def add_query(self, subdomain: str, kind: str, text: str, style: str, rels: dict[int, int],
                  date: _dt.date, **extra: Any) -> None:
        bucket = self.candidates.setdefault(subdomain, {}).setdefault(kind, [])
        text = " ".join(text.replace("the the ", "the ").split())
        bucket.append({"text": text, "style": style, "rels": rels, "date": date, "extra": extra})


def _fill(template: str, values: dict[str, Any]) -> str:
    return template.format(**values)


def _refs(rng: random.Random, service: tuple[str, str, list[str], str]) -> tuple[str, str]:
    """How a query names a service: by codename, plain description or nickname."""
    code, desc, nicks, _ = service
    roll = rng.random()
    if roll < 0.34:
        return code, "codename"
    if roll < 0.72:
        return f"the {desc}", "description"
    return rng.choice(nicks), "nickname"


def _query_style(refers_by: str) -> str:
    return "codename" if refers_by in ("codename", "description") else "colloquial"


def _build_subdomain(b: _Builder, name: str, vocab: dict[str, Any]) -> None:
    rng = b.rng
    teams: list[str] = vocab["teams"]
    services = vocab["services"]
    codes = [s[0] for s in services]

    def closings(values: dict[str, Any]) -> list[str]:
        out = []
        for template in CLOSINGS:
            local = dict(values)
            local["X"] = rng.choice([c for c in codes if c != values.get("C")])
            local["MY"] = _month_year(_date_between(rng, DATE_FIRST, DATE_LAST))
            out.append(_fill(template, local))
        return out

    # ---- services: overview, aspects (some with an older revision), incidents, changes
    for index, service in enumerate(services):
        code, desc, nicks, objects = service
        team = teams[index % len(teams)]
        others = [c for c in codes if c != code]
        base = {"C": code, "O": objects, "T": team, "E": code.upper(), "cmd": code.lower() + "ctl",
                "G": f"{code.lower()}-{rng.choice(['readers', 'users', 'viewers'])}", "L": rng.choice(LANGUAGES)}
        ov_date = _date_between(rng, DATE_FIRST, _dt.date(2023, 6, 30))
        overview_sentences = [
            f"{code} is the internal codename for the {desc}.",
            f"It handles {objects} and is run by the {team} team.",
            f"People also call it {nicks[0]}.",
            f"Its main neighbours are {others[0]} and {others[1]}.",
        ]
        ov = b.add_doc(name, "overview", f"{code} service overview", overview_sentences, ov_date,
                       closings(base), {"service": code})
        for template in ["what is {C}", "what does {C} do", "internal name of the {D}", "which system is {N}",
                         "what is the codename for the {D}"]:
            text = _fill(template, {"C": code, "D": desc, "N": nicks[1]})
            b.add_query(name, "overview", text, "codename", {ov: 2}, ov_date, service=code)

        for aspect in ASPECTS:
            values = dict(base)
            deps = rng.sample(others, 2)
            regions = rng.sample(REGIONS, 2)
            version = rng.randint(2, 4)
            values.update({"D1": deps[0], "D2": deps[1], "R1": regions[0], "R2": regions[1],
                           "v": version, "u": version - 1, "W": rng.choice(WEEKDAYS)})
            title_t = rng.choice(aspect["titles"])
            intro_t = rng.choice(aspect["intros"])
            detail_t = rng.choice(aspect["details"])
            mention_desc = rng.random() < 0.3
            revisions = 2 if rng.random() < 0.4 else 1
            ids = []
            for rev in range(revisions):
                local = dict(values)
                local["n"] = rng.choice([2, 3, 5, 8, 10, 15, 20, 30, 45, 60, 90, 120, 250, 500])
                local["m"] = local["n"] * rng.choice([2, 3, 4, 6])
                if revisions == 2 and rev == 0:
                    date = _date_between(rng, DATE_FIRST, _dt.date(2023, 9, 30))
                else:
                    date = _date_between(rng, _dt.date(2023, 10, 1) if revisions == 2 else DATE_FIRST, DATE_LAST)
                local["DATE"] = _long_date(date + _dt.timedelta(days=rng.randint(90, 400)))
                sentences = [_fill(intro_t, local), _fill(detail_t, local)]
                if mention_desc:
                    sentences.insert(1, f"({code} is the {desc}.)")
                title = _fill(title_t, local)
                if revisions == 2 and rev == 0:
                    title = f"{title} (superseded)"
                extra = {"service": code, "aspect": aspect["key"], "revision": rev + 1}
                ids.append((b.add_doc(name, "runbook", title, sentences, date, closings(local), extra), date, local))
            current, cur_date, cur_values = ids[-1]
            templates = list(aspect["queries"])
            rng.shuffle(templates)
            for template in templates[:3]:
                ref, refers_by = _refs(rng, service)
                text = _fill(template, dict(cur_values, R=ref))
                rels = {current: 2, ov: 1}
                for older, _, _ in ids[:-1]:
                    rels[older] = 1
                b.add_query(name, "aspect", text, _query_style(refers_by), rels, cur_date,
                            refers_by=refers_by, service=code)

        # incidents: distinct months per service
        months: list[tuple[int, int]] = []
        while len(months) < 14:
            candidate = (rng.randint(2022, 2025), rng.randint(1, 12))
            if candidate not in months:
                months.append(candidate)
        for year, month in months:
            day = _dt.date(year, month, rng.randint(1, 28))
            symptom = rng.choice(INCIDENT_SYMPTOMS)
            local = {"O": objects, "D": rng.choice(others), "ver": f"{rng.randint(1, 9)}.{rng.randint(0, 30)}"}
            cause_i = rng.randrange(len(INCIDENT_CAUSES))
            number = rng.randint(1000, 9999)
            sentences = [
                f"On {_long_date(day)}, {code} {_fill(symptom[1], local)} for {rng.randint(7, 240)} minutes.",
                f"Root cause: {_fill(INCIDENT_CAUSES[cause_i], local)}.",
                f"Follow-up action: {INCIDENT_ACTIONS[cause_i]}.",
                f"Severity {rng.randint(1, 3)}; incident commander from {team}.",
            ]
            doc = b.add_doc(name, "incident", f"INC-{number}: {code} {symptom[0]}", sentences, day,
                            closings(dict(base, C=code)), {"service": code, "incident": f"INC-{number}"})
            for template in [
                "what caused the {R} {S} in {MY}", "why did {R} {V} on {DL}", "postmortem for {R} {MY}",
                "{R} {S} root cause {MY}",
            ]:
                ref, refers_by = _refs(rng, service)
                text = _fill(template, {"R": ref, "S": symptom[0], "V": symptom[2], "MY": _month_year(day),
                                        "DL": _long_date(day)})
                b.add_query(name, "incident", text, "dated", {doc: 2}, day, refers_by=refers_by, service=code)

        # change notices
        for _ in range(12):
            day = _date_between(rng, DATE_FIRST, DATE_LAST)
            change = rng.choice(CHANGES)
            local = {"ver": f"{rng.randint(2, 12)}.{rng.randint(0, 9)}", "R2": rng.choice(REGIONS),
                     "n": rng.choice([5, 10, 15, 30])}
            sentences = [
                f"{code} will {_fill(change[1], local)} on {_long_date(day)} starting {rng.randint(0, 23):02d}:00 UTC.",
                f"Expected impact: {_fill(rng.choice(CHANGE_IMPACTS), local)}.",
                f"Contact {team} with concerns or to request a delay.",
            ]
            doc = b.add_doc(name, "change", f"Change notice: {code} {_fill(change[0], local)}", sentences, day,
                            closings(dict(base)), {"service": code})
            ref, refers_by = _refs(rng, service)
            text = _fill(change[2], dict(local, R=ref))
            b.add_query(name, "change", f"{text} {_month_year(day)}", "dated", {doc: 2}, day,
                        refers_by=refers_by, service=code)
            ref, refers_by = _refs(rng, service)
            b.add_query(name, "change", f"{ref} {_fill(change[0], local)} {_long_date(day)}", "dated", {doc: 2}, day,
                        refers_by=refers_by, service=code)

    # ---- lookalike product families
    for family in vocab["families"]:
        fname, kind, variants = family["name"], family["kind"], family["variants"]
        fam_date = _date_between(rng, DATE_FIRST, _dt.date(2023, 12, 31))
        f1, f2 = family["facts"]
        fam_sentences = [
            f"The {fname} {kind} family has {len(variants)} models: {', '.join(fname + ' ' + v for v in variants)}.",
            f"{f1[0].capitalize()} ranges from {f1[3][0]} to {f1[3][-1]} {f1[1]}.".replace("  ", " "),
            "Pick the model by load, not by price; mixing models in one site is supported.",
        ]
        fam_doc = b.add_doc(name, "product-family", f"{fname} {kind} family overview", fam_sentences, fam_date,
                            closings({"T": teams[0], "C": ""}), {"family": fname})
        templates = {a["key"]: (rng.choice(a["titles"]), rng.choice(a["texts"])) for a in PRODUCT_ASPECTS}
        major = rng.randint(3, 7)
        for vi, variant in enumerate(variants):
            values = {"F": fname, "V": variant, "K": kind,
                      "f1l": f1[0], "f1u": f1[1], "f1v": f1[3][vi],
                      "f2l": f2[0], "f2u": f2[1], "f2v": f2[3][vi],
                      "fw": f"{major}.{vi + 1}.{rng.randint(0, 9)}", "col": rng.choice(COLOURS),
                      "code": rng.randint(100, 999), "meaning": rng.choice(FAULT_MEANINGS),
                      "eol": _long_date(_date_between(rng, _dt.date(2025, 6, 1), _dt.date(2028, 12, 31)))}
            values["f1q"] = _fill(f1[2], values)
            values["f2q"] = _fill(f2[2], values)
            for aspect in PRODUCT_ASPECTS:
                title_t, text_t = templates[aspect["key"]]
                date = _date_between(rng, fam_date, DATE_LAST)
                text = _fill(text_t, values).replace("  ", " ")
                doc = b.add_doc(name, "product", _fill(title_t, values), [text], date,
                                closings({"T": teams[0], "C": ""}),
                                {"family": fname, "model": f"{fname} {variant}", "aspect": aspect["key"]})
                qtemplates = list(aspect["queries"])
                rng.shuffle(qtemplates)
                for template in qtemplates[:3]:
                    text_q = _fill(template, values).replace("  ", " ")
                    b.add_query(name, "product", text_q, "lookalike", {doc: 2, fam_doc: 1}, date,
                                model=f"{fname} {variant}")

    # ---- formal procedures with colloquial queries; some have an older revision
    for title, body, colloquial in vocab["procedures"]:
        revisions = rng.choice([1, 2, 2, 3])
        ids = []
        starts = sorted(_date_between(rng, DATE_FIRST, DATE_LAST) for _ in range(revisions))
        for rev, date in enumerate(starts):
            owner = rng.choice(teams)
            sentences = [
                body,
                f"This procedure is maintained by {owner} and applies to all {COMPANY} entities.",
                f"Revision {rev + 1}, effective {_long_date(date)}.",
            ]
            doc_title = title if rev == revisions - 1 else f"{title} (revision {rev + 1}, superseded)"
            ids.append((b.add_doc(name, "procedure", doc_title, sentences, date,
                                  closings({"T": owner, "C": ""}), {"revision": rev + 1}), date))
        current, cur_date = ids[-1]
        rels = {current: 2}
        for older, _ in ids[:-1]:
            rels[older] = 1
        for text in colloquial:
            b.add_query(name, "procedure", text, "colloquial", rels, cur_date)


def _quota(total: int) -> dict[str, int]:
    keys = list(QUERY_MIX)
    out = {k: int(total * QUERY_MIX[k]) for k in keys}
    out[keys[0]] += total - sum(out.values())
    return out


def write_demo_dataset(out: str | Path, seed: int = 13) -> Path:
    """Write the demo dataset for ``seed`` into folder ``out`` and return its path."""
    rng = random.Random(seed)
    root = Path(out)
    builder = _Builder(rng)
    names = list(SUBDOMAINS)
    for name in names:
        _build_subdomain(builder, name, SUBDOMAINS[name])

    # shuffle document order, then number documents
    order = list(range(len(builder.docs)))
    rng.shuffle(order)
    doc_ids: dict[int, str] = {}
    for position, index in enumerate(order):
        doc_ids[index] = f"doc{position + 1:05d}"

    # choose queries: fixed quotas per subdomain, texts unique across the dataset
    seen: set[str] = set()
    chosen: dict[str, list[dict[str, Any]]] = {}
    in_domain = [n for n in names if n != HELD_OUT_SUBDOMAIN]
    in_total = sum(SPLIT_SIZES.values()) - HELD_OUT_QUERIES
    per_domain = {n: in_total // len(in_domain) for n in in_domain}
    for n in in_domain[: in_total - sum(per_domain.values())]:
        per_domain[n] += 1
    per_domain[HELD_OUT_SUBDOMAIN] = HELD_OUT_QUERIES
    for name in names:
        picked: list[dict[str, Any]] = []
        buckets = builder.candidates[name]
        quota = _quota(per_domain[name])
        leftovers: list[dict[str, Any]] = []
        for kind in QUERY_MIX:
            pool = list(buckets.get(kind, []))
            rng.shuffle(pool)
            taken = 0
            for cand in pool:
                key = cand["text"].lower()
                if taken < quota[kind] and key not in seen:
                    seen.add(key)
                    picked.append(cand)
                    taken += 1
                else:
                    leftovers.append(cand)
        rng.shuffle(leftovers)
        for cand in leftovers:
            if len(picked) >= per_domain[name]:
                break
            key = cand["text"].lower()
            if key not in seen:
                seen.add(key)
                picked.append(cand)
        chosen[name] = picked

    # splits: held-out subdomain only in test; the rest shuffled into train/dev/test
    pool = [q for n in in_domain for q in chosen[n]]
    rng.shuffle(pool)
    n_train, n_dev = SPLIT_SIZES["train"], SPLIT_SIZES["dev"]
    assignment = (
        [("train", q) for q in pool[:n_train]]
        + [("dev", q) for q in pool[n_train:n_train + n_dev]]
        + [("test", q) for q in pool[n_train + n_dev:]]
        + [("test", q) for q in chosen[HELD_OUT_SUBDOMAIN]]
    )
    rng.shuffle(assignment)

    root.mkdir(parents=True, exist_ok=True)
    (root / "qrels").mkdir(exist_ok=True)

    corpus_lines = []
    for index in order:
        doc = builder.docs[index]
        record = {"_id": doc_ids[index], "title": doc["title"], "text": doc["text"], "metadata": doc["metadata"]}
        corpus_lines.append(json.dumps(record, sort_keys=True, ensure_ascii=False))
    _write(root / "corpus.jsonl", "\n".join(corpus_lines) + "\n")

    query_lines = []
    qrels: dict[str, list[str]] = {split: [] for split in SPLIT_SIZES}
    for position, (split, cand) in enumerate(assignment):
        qid = f"q{position + 1:05d}"
        subdomain = builder.docs[next(iter(cand["rels"]))]["metadata"]["subdomain"]
        asked = cand["date"] + _dt.timedelta(days=rng.randint(0, 60))
        metadata = {"subdomain": subdomain, "date": min(asked, DATE_LAST).isoformat(), "style": cand["style"]}
        metadata.update(cand["extra"])
        query_lines.append(json.dumps({"_id": qid, "text": cand["text"], "metadata": metadata},
                                      sort_keys=True, ensure_ascii=False))
        for doc_index, grade in sorted(cand["rels"].items(), key=lambda item: doc_ids[item[0]]):
            qrels[split].append(f"{qid}\t{doc_ids[doc_index]}\t{grade}\n")
    _write(root / "queries.jsonl", "\n".join(query_lines) + "\n")
    for split, lines in qrels.items():
        _write(root / "qrels" / f"{split}.tsv", QRELS_HEADER + "".join(lines))

    counts = {split: sum(1 for s, _ in assignment if s == split) for split in SPLIT_SIZES}
    _write(root / "README.md", _readme(seed, len(builder.docs), counts))
    _write_pool(root, builder, seen, doc_ids, seed)
    return root


def _write_pool(root: Path, builder: _Builder, seen: set[str], doc_ids: dict[int, str], seed: int) -> None:
    """The unlabelled query pool: live traffic nobody judged. Candidates left over by the
    splits (texts unique across the whole dataset), :data:`POOL_PER_SUBDOMAIN` of each
    trained-on subdomain in the query mix, drawn by a ``random.Random`` of their own after
    everything else, so the files above stay byte-identical to a dataset without a pool.
    The held-out subdomain has none: its slice stays never trained on, logs included.
    ``pool/queries.jsonl`` holds the texts; their relevance goes to
    ``pool/hidden-relevance.tsv``, outside ``qrels/``, read only by the A/B simulator
    (``harness.ab.simulate.served_queries``) to drive the clicks."""
    rng = random.Random(f"pool-{seed}")
    taken = set(seen)
    query_lines, relevance_lines = [], []
    for name in SUBDOMAINS:
        if name == HELD_OUT_SUBDOMAIN:
            continue
        quota = _quota(POOL_PER_SUBDOMAIN)
        picked: list[dict[str, Any]] = []
        leftovers: list[dict[str, Any]] = []
        for kind in QUERY_MIX:  # the mix first, then (a kind short of texts) any kind left
            pool = list(builder.candidates[name].get(kind, []))
            rng.shuffle(pool)
            for cand in pool:
                if quota[kind] and cand["text"].lower() not in taken:
                    taken.add(cand["text"].lower())
                    picked.append(cand)
                    quota[kind] -= 1
                else:
                    leftovers.append(cand)
        rng.shuffle(leftovers)
        for cand in leftovers:
            if len(picked) < POOL_PER_SUBDOMAIN and cand["text"].lower() not in taken:
                taken.add(cand["text"].lower())
                picked.append(cand)
        for cand in picked:
            qid = f"p{len(query_lines) + 1:05d}"
            metadata = {"subdomain": name, "style": cand["style"], **cand["extra"]}
            query_lines.append(json.dumps({"_id": qid, "text": cand["text"], "metadata": metadata},
                                          sort_keys=True, ensure_ascii=False))
            for doc_index, grade in sorted(cand["rels"].items(), key=lambda item: doc_ids[item[0]]):
                relevance_lines.append(f"{qid}\t{doc_ids[doc_index]}\t{grade}\n")
    (root / POOL_FOLDER).mkdir(exist_ok=True)
    _write(root / POOL_FOLDER / "queries.jsonl", "\n".join(query_lines) + "\n")
    _write(root / POOL_FOLDER / POOL_RELEVANCE, QRELS_HEADER + "".join(relevance_lines))


def _write(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def _readme(seed: int, n_docs: int, counts: dict[str, int]) -> str:
    subdomains = ", ".join(f"`{n}`" for n in SUBDOMAINS)
    return f"""# {COMPANY} internal knowledge base (synthetic demo dataset)

Generated by `harness.data.demo.write_demo_dataset(out, seed={seed})`. Every word comes
from the templates and vocabulary in `harness/data/demo.py`; nothing was downloaded or
copied. The same seed gives byte-identical files.

- `corpus.jsonl`: {n_docs} short documents (runbooks, service overviews, product sheets,
  procedures, incident reports, change notices) in the subdomains {subdomains}, dated
  2022-2025. `metadata` holds `subdomain`, `date` and `type`.
- `queries.jsonl`: {sum(counts.values())} queries; `metadata` holds `subdomain`, `date` and `style`
  (`codename`: names a service by codename or plain description; `colloquial`: informal
  wording against formal pages; `lookalike`: must pick one model out of a product family;
  `dated`: an incident or change identified by date).
- `qrels/train.tsv` ({counts['train']} queries), `qrels/dev.tsv` ({counts['dev']}), `qrels/test.tsv` ({counts['test']}):
  graded relevance, 2 = the exact document, 1 = partially relevant (an older revision,
  the service overview page or the product family overview).

Held-out slice: subdomain `{HELD_OUT_SUBDOMAIN}`. Its {HELD_OUT_QUERIES} queries are all in test, and none of
its documents is judged in train or dev. Evaluate it with `slice:subdomain={HELD_OUT_SUBDOMAIN}`.

What makes it hard for a generic model: services are called by internal codenames
(e.g. Halcyon is the invoice reconciliation service) that queries often replace with a
plain description or a nickname; product families whose pages differ by one model
number; colloquial questions against formal procedure titles.
"""
