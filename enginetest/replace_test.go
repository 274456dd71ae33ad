package enginetest

import (
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/stretchr/testify/assert"
)

func pmap(m map[string]any) resource.PropertyMap { return resource.NewPropertyMapFromMap(m) }

func TestReplaceTableHasSources(t *testing.T) {
	for typ, rule := range replaceTable {
		assert.NotEmpty(t, rule.source, "%s: every row names its source", typ)
	}
	for typ := range StatefulTypes {
		if typ != "gcp:secretmanager/secret:Secret" {
			assert.Contains(t, replaceTable, typ, "%s is stateful: the table says what replaces it", typ)
		}
	}
}

func TestReplaces(t *testing.T) {
	kube := &standIn{pkg: "kubernetes"}
	gcp := &standIn{pkg: "gcp"}
	sts := func(size string) resource.PropertyMap {
		return pmap(map[string]any{"metadata": map[string]any{"name": "redis", "namespace": "oms"},
			"spec": map[string]any{"replicas": 3, "volumeClaimTemplates": []any{map[string]any{"spec": map[string]any{
				"resources": map[string]any{"requests": map[string]any{"storage": size}}}}}}})
	}
	keys, dbr := kube.replaces("kubernetes:apps/v1:StatefulSet", nil, sts("20Gi"), sts("25Gi"), nil)
	assert.Equal(t, []string{"spec"}, keys, "a claim template change replaces the StatefulSet")
	assert.True(t, dbr, "a named object is deleted first")
	keys, _ = kube.replaces("kubernetes:apps/v1:StatefulSet", nil, sts("20Gi"), sts("20Gi"), nil)
	assert.Empty(t, keys)

	secret := func(v string) resource.PropertyMap {
		return pmap(map[string]any{"metadata": map[string]any{"name": "auth"}, "stringData": map[string]any{"password": v}})
	}
	keys, dbr = kube.replaces("kubernetes:core/v1:Secret", nil, secret("a"), secret("b"), nil)
	assert.Equal(t, []string{"stringData"}, keys, "by default a Secret's content replaces it")
	assert.True(t, dbr)
	kube.config = map[string]string{"enableSecretMutable": "true"}
	keys, _ = kube.replaces("kubernetes:core/v1:Secret", nil, secret("a"), secret("b"), nil)
	assert.Empty(t, keys, "enableSecretMutable updates it in place")

	inst := func(size float64) resource.PropertyMap {
		return pmap(map[string]any{"name": "pg", "settings": map[string]any{"diskSize": size, "diskAutoresize": true}})
	}
	grown := refreshed("gcp:sql/databaseInstance:DatabaseInstance", inst(100))
	keys, dbr = gcp.replaces("gcp:sql/databaseInstance:DatabaseInstance", grown, inst(100), inst(110), nil)
	assert.Equal(t, []string{"settings"}, keys, "a size below the autoresized disk replaces the instance")
	assert.True(t, dbr, "its explicit name stays: deleted first")
	keys, _ = gcp.replaces("gcp:sql/databaseInstance:DatabaseInstance", grown, inst(100), inst(100), []string{"settings.diskSize"})
	assert.Empty(t, keys, "ignoreChanges on settings.diskSize")
	keys, _ = gcp.replaces("gcp:sql/databaseInstance:DatabaseInstance", inst(100), inst(100), inst(150), nil)
	assert.Empty(t, keys, "growing the disk is an update")

	random := &standIn{pkg: "random"}
	pw := func(keepers map[string]any) resource.PropertyMap {
		m := map[string]any{"length": 40, "special": false}
		if keepers != nil {
			m["keepers"] = keepers
		}
		return pmap(m)
	}
	keys, dbr = random.replaces("random:index/randomPassword:RandomPassword", nil, pw(nil), pw(map[string]any{"rotation": "1"}), nil)
	assert.Equal(t, []string{"keepers"}, keys, "new keepers generate a new password")
	assert.False(t, dbr, "created before the old one is deleted")
}
