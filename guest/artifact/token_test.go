package artifact

import "testing"

func TestIDsFromToken(t *testing.T) {
	for _, tc := range []struct {
		name     string
		token    string
		run, job string
		wantErr  bool
	}{
		{"gitea", fakeToken("Actions.Results:21:49"), "21", "49", false},
		{"github, several scopes", fakeToken("Actions.ExampleScope Actions.Results:ce7f54c7-61c7-4aae-887f-30da475f5f1a:ca395085-040a-526b-2ce8-bdc85f692774"),
			"ce7f54c7-61c7-4aae-887f-30da475f5f1a", "ca395085-040a-526b-2ce8-bdc85f692774", false},
		{"no results scope", fakeToken("Actions.GenericRead:00000000-0000-0000-0000-000000000000"), "", "", true},
		{"injection in id", fakeToken(`Actions.Results:1","x":"2:3`), "", "", true},
		{"empty id", fakeToken("Actions.Results::3"), "", "", true},
		{"not a JWT", "abc", "", "", true},
		{"bad base64", "a.!!!.c", "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids, err := idsFromToken(tc.token)
			if (err != nil) != tc.wantErr || ids.run != tc.run || ids.job != tc.job {
				t.Errorf("idsFromToken = %+v, %v; want %s/%s, error %v", ids, err, tc.run, tc.job, tc.wantErr)
			}
		})
	}
}
