package protocol

import (
	"encoding/base64"
	"encoding/json"
	"testing"
)

// makeJIT builds an encoded_jit_config the way the service does.
func makeJIT(t *testing.T, runner map[string]any, fips string) string {
	t.Helper()
	k := key(t)
	b := func(v []byte) string { return base64.StdEncoding.EncodeToString(v) }
	rsaParams := map[string]string{
		"d": b(k.D.Bytes()), "dp": b(k.Precomputed.Dp.Bytes()), "dq": b(k.Precomputed.Dq.Bytes()),
		"exponent": b([]byte{1, 0, 1}), "inverseQ": b(k.Precomputed.Qinv.Bytes()),
		"modulus": b(k.N.Bytes()), "p": b(k.Primes[0].Bytes()), "q": b(k.Primes[1].Bytes()),
	}
	creds := map[string]any{"scheme": "OAuth", "data": map[string]string{
		"clientId": "11111111-2222-3333-4444-555555555555", "authorizationUrl": "https://auth.example/t",
		"requireFipsCryptography": fips}}
	files := map[string]string{}
	for name, v := range map[string]any{".runner": runner, ".credentials": creds, ".credentials_rsaparams": rsaParams} {
		j, _ := json.Marshal(v)
		files[name] = b(append([]byte("\xef\xbb\xbf"), j...))
	}
	outer, _ := json.Marshal(files)
	return b(outer)
}

func TestParseJITConfig(t *testing.T) {
	runner := map[string]any{"agentId": 12, "agentName": "jit-1", "poolId": 1, "serverUrl": "https://pipelines.example/",
		"serverUrlV2": "https://broker.example/", "useV2Flow": true, "gitHubUrl": "https://github.com/o/r",
		"ephemeral": true, "disableUpdate": true, "workFolder": "_work"}
	for _, tc := range []struct {
		fips string
		want bool
	}{{"True", true}, {"False", false}, {"", false}} {
		c, err := ParseJITConfig(makeJIT(t, runner, tc.fips))
		if err != nil {
			t.Fatal(err)
		}
		if c.RunnerID != 12 || c.RunnerName != "jit-1" || c.ServerURLV2 != "https://broker.example/" ||
			c.GitHubURL != "https://github.com/o/r" || c.ClientID != "11111111-2222-3333-4444-555555555555" ||
			c.AuthorizationURL != "https://auth.example/t" || !c.Ephemeral || c.RequireFIPS != tc.want {
			t.Errorf("fips %q: %+v", tc.fips, c)
		}
		k, err := c.PrivateKey()
		if err != nil || !k.Equal(key(t)) {
			t.Fatalf("key round trip failed: %v", err)
		}
	}
	// PascalCase names, as RunnerSettings' members are spelled.
	pascal := map[string]any{"AgentId": 3, "AgentName": "p", "ServerUrlV2": "https://b/", "UseV2Flow": true}
	if c, err := ParseJITConfig(makeJIT(t, pascal, "True")); err != nil || c.RunnerID != 3 {
		t.Fatalf("PascalCase: %v %+v", err, c)
	}
	// Strings, as GitHub's JIT configs write every value.
	stringy := map[string]any{"AgentId": "5", "AgentName": "s", "ServerUrlV2": "https://b/", "UseV2Flow": "True", "Ephemeral": "True"}
	if c, err := ParseJITConfig(makeJIT(t, stringy, "False")); err != nil || c.RunnerID != 5 || !c.Ephemeral {
		t.Fatalf("string values: %v %+v", err, c)
	}
	legacy := map[string]any{"agentId": 1, "serverUrl": "https://pipelines/"}
	if _, err := ParseJITConfig(makeJIT(t, legacy, "")); err == nil {
		t.Error("legacy JIT config accepted")
	}
	if _, err := ParseJITConfig("!!"); err == nil {
		t.Error("garbage accepted")
	}
}
