package server

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// fuzzRoute sends body to route on a server with a fake engine and checks
// that user input never yields a 5xx and that every answer is the success
// shape or the one error shape.
func fuzzRoute(f *testing.F, route string, seeds []string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	s, err := New(func() Options {
		o := testOptions()
		o.MaxBodyBytes = 1 << 16
		return o
	}())
	if err != nil {
		f.Fatal(err)
	}
	if err := s.SetBackend(Backend{Name: "fake-model", Engine: &fakeEngine{}, Tokenizer: byteTok{}}); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(s.Close)
	h := s.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", route, strings.NewReader(string(body)))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %q: status %d: %s", route, body, w.Code, w.Body.Bytes())
		}
		if w.Code != 200 {
			var e ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Message == "" || e.Error.Type == "" {
				t.Fatalf("%s %q: status %d with a body that is not the error shape: %s", route, body, w.Code, w.Body.Bytes())
			}
		}
	})
}

func FuzzPrefillRequest(f *testing.F) {
	fuzzRoute(f, "/v1/prefill", []string{
		`{"prompt":"Once upon a time","logprobs":2}`,
		`{"tokens":[1,5,299],"allreduce":"f32","block_size":32}`,
		`{"tokens":[5],"add_bos":true,"allreduce":"int4"}`,
		`{"prompt":"","tokens":[]}`,
		`{"tokens":[-1,300,1e3]}`,
		`{"prompt":"\u0000\ud800"}`,
		`{"logprobs":21}`,
		`[]`, `null`, `"x"`, `{`, ``,
	})
}

func FuzzCompletionRequest(f *testing.F) {
	fuzzRoute(f, "/v1/completions", []string{
		`{"model":"fake-model","prompt":[[1,10,11,13]],"max_tokens":1,"temperature":0,"logprobs":1,"seed":1234,"echo":true}`,
		`{"prompt":"ab","max_tokens":0,"echo":true,"logprobs":0}`,
		`{"prompt":["ab","x"],"logprobs":20,"allreduce":"bf16"}`,
		`{"prompt":[100,101],"stop":["\n"],"n":1,"top_p":1}`,
		`{"prompt":[[]]}`, `{"prompt":[5,"a"]}`, `{"prompt":{"a":1}}`,
		`{"prompt":"a","temperature":1e309}`,
		`{"prompt":"a","max_tokens":-9223372036854775808}`,
		`[]`, `{}`, `{`,
	})
}
