package docs_test

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/nomad/helper/pluginutils/hclspecutils"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/shared/hclspec"
	"github.com/zclconf/go-cty/cty"
	ctymsgpack "github.com/zclconf/go-cty/cty/msgpack"

	"github.com/solstice-ci/solstice/driver/plugin"
)

// placeholderMark marks a catalog checksum the operator must fill in: the
// driver refuses it (not 64 hex digits), so the image stays out of
// service until then, and the doc test accepts that one refusal.
const placeholderMark = "REPLACE"

// checkHCL parses an HCL snippet (src starts at line of file) and decodes
// every solstice-vm plugin block and solstice-vm task config in it
// against the driver's own schemas, as a Nomad client would.
func checkHCL(file string, line int, src string) []string {
	f, diags := hclsyntax.ParseConfig([]byte(src), file, hcl.Pos{Line: line, Column: 1})
	if diags.HasErrors() {
		return []string{diags.Error()}
	}
	var problems []string
	walkBlocks(f.Body.(*hclsyntax.Body), func(b *hclsyntax.Block) {
		switch {
		case b.Type == "plugin" && slices.Equal(b.Labels, []string{plugin.Name}):
			if cfg := childBlock(b, "config"); cfg != nil {
				problems = append(problems, checkPluginConfig(cfg.Body)...)
			}
		case b.Type == "task" && driverOf(b) == plugin.Name:
			if cfg := childBlock(b, "config"); cfg != nil {
				problems = append(problems, checkTaskConfig(cfg.Body)...)
			}
		}
	})
	return problems
}

func walkBlocks(body *hclsyntax.Body, fn func(*hclsyntax.Block)) {
	for _, b := range body.Blocks {
		fn(b)
		walkBlocks(b.Body, fn)
	}
}

func childBlock(b *hclsyntax.Block, typ string) *hclsyntax.Block {
	for _, c := range b.Body.Blocks {
		if c.Type == typ {
			return c
		}
	}
	return nil
}

func driverOf(b *hclsyntax.Block) string {
	a, ok := b.Body.Attributes["driver"]
	if !ok {
		return ""
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() || v.Type() != cty.String {
		return ""
	}
	return v.AsString()
}

// decode decodes body against a plugin schema into out, the way Nomad
// hands a plugin its configuration (msgpack of the decoded value).
// Variables (${NOMAD_META_…}) decode as placeholders.
func decode(body hcl.Body, schema *hclspec.Spec, out any) error {
	spec, diags := hclspecutils.Convert(schema)
	if diags.HasErrors() {
		return fmt.Errorf("convert schema: %w", diags)
	}
	vars := map[string]cty.Value{}
	for _, tr := range hcldec.Variables(body, spec) {
		vars[tr.RootName()] = cty.StringVal("${" + tr.RootName() + "}")
	}
	val, diags := hcldec.Decode(body, spec, &hcl.EvalContext{Variables: vars})
	if diags.HasErrors() {
		return diags
	}
	b, err := ctymsgpack.Marshal(val, hcldec.ImpliedType(spec))
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	return base.MsgPackDecode(b, out)
}

func checkPluginConfig(body hcl.Body) []string {
	schema, _ := (&plugin.Driver{}).ConfigSchema()
	cfg := plugin.DefaultConfig()
	if err := decode(body, schema, cfg); err != nil {
		return []string{fmt.Sprintf("plugin %q config: %v", plugin.Name, err)}
	}
	if err := cfg.Validate(); err != nil {
		return []string{err.Error()}
	}
	var problems []string
	for label, img := range cfg.Images {
		if strings.Trim(img.SHA256, "0") == "" && img.SHA256 != "" {
			problems = append(problems, fmt.Sprintf("image %q: sha256 is all zeros, a checksum nothing has: give the published one, or a %s… placeholder the driver refuses", label, placeholderMark))
		}
	}
	for label, err := range cfg.Broken {
		if strings.Contains(cfg.Images[label].SHA256, placeholderMark) {
			continue // a marked placeholder, refused as it must be
		}
		problems = append(problems, fmt.Sprintf("the driver takes image %q out of service: %v", label, err))
	}
	slices.Sort(problems)
	return problems
}

// pluginConfig decodes and validates the solstice-vm plugin block of a
// client configuration.
func pluginConfig(file, src string) (*plugin.Config, error) {
	f, diags := hclsyntax.ParseConfig([]byte(src), file, hcl.Pos{Line: 1, Column: 1})
	if diags.HasErrors() {
		return nil, diags
	}
	for _, b := range f.Body.(*hclsyntax.Body).Blocks {
		if b.Type != "plugin" || !slices.Equal(b.Labels, []string{plugin.Name}) || childBlock(b, "config") == nil {
			continue
		}
		schema, _ := (&plugin.Driver{}).ConfigSchema()
		cfg := plugin.DefaultConfig()
		if err := decode(childBlock(b, "config").Body, schema, cfg); err != nil {
			return nil, err
		}
		return cfg, cfg.Validate()
	}
	return nil, fmt.Errorf("%s: no plugin %q block with a config", file, plugin.Name)
}

func checkTaskConfig(body hcl.Body) []string {
	schema, _ := (&plugin.Driver{}).TaskConfigSchema()
	var tc plugin.TaskConfig
	if err := decode(body, schema, &tc); err != nil {
		return []string{fmt.Sprintf("task config: %v", err)}
	}
	return nil
}
