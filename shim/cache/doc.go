// Package cache is the actions/cache service the forgejo shim serves to
// its guests, since Gitea and Forgejo have none (their runners bring
// their own). It speaks the shape of GitHub's cache v2 Twirp service
// (CreateCacheEntry, FinalizeCacheEntryUpload, GetCacheEntryDownloadURL)
// with signed blob URLs that take Azure-style block uploads, so the guest
// has one client for both forges. Entries live in a directory the operator
// gives (or a Nomad host volume), one subdirectory per repository, under a
// total size limit with least-recently-used eviction. Every call carries a
// token the shim minted for one task and one repository; a repository
// never sees another's entries.
package cache
