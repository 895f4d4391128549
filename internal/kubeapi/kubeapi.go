// Package kubeapi is the part of the Kubernetes API that kubefwd speaks:
// Services and EndpointSlices listed and watched, namespaces listed, a pod
// and its log read, permissions asked for, the server's version, and the
// address of a pod's port-forward.
//
// It is written on client-go's REST client with a scheme of only the groups
// kubefwd reads (core/v1, discovery/v1, authorization/v1). client-go's typed
// clients and informers would do the same calls, but each of them links
// k8s.io/client-go/kubernetes/scheme, which registers every type of all 56
// API groups: about a third of kubefwd's binary and megabytes of heap at
// start for types it never sees.
package kubeapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/flowcontrol"
)

// codecs knows the three groups kubefwd reads, with the meta types
// (options, WatchEvent, Status) each of them registers.
type codecs struct {
	scheme     *runtime.Scheme
	serializer runtime.NegotiatedSerializer
	params     runtime.ParameterCodec
}

func newCodecs() codecs {
	s := runtime.NewScheme()
	utilruntime.Must(corev1.AddToScheme(s))
	utilruntime.Must(discoveryv1.AddToScheme(s))
	utilruntime.Must(authorizationv1.AddToScheme(s))
	// Unversioned meta types (Status from any endpoint), as client-go's
	// own scheme registers them.
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	return codecs{
		scheme:     s,
		serializer: serializer.NewCodecFactory(s).WithoutConversion(),
		params:     runtime.NewParameterCodec(s),
	}
}

// Client speaks to one API server. It is safe for concurrent use.
type Client struct {
	core, discovery, authorization *rest.RESTClient
	params                         runtime.ParameterCodec
}

// New returns a Client for the server cfg points at. Its three groups share
// one HTTP client and one rate limiter (cfg.QPS, cfg.Burst), as client-go's
// clientset does.
func New(cfg *rest.Config) (*Client, error) {
	c := *cfg // shallow: the groups differ only in what is set below
	if c.RateLimiter == nil && c.QPS > 0 {
		if c.Burst <= 0 {
			return nil, fmt.Errorf("kubernetes client: burst must be positive when QPS is set")
		}
		c.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(c.QPS, c.Burst)
	}
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	httpClient, err := rest.HTTPClientFor(&c)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	cd := newCodecs()
	group := func(gv schema.GroupVersion, apiPath string) (*rest.RESTClient, error) {
		g := c
		g.GroupVersion = &gv
		g.APIPath = apiPath
		g.NegotiatedSerializer = cd.serializer
		if g.ContentType == "" {
			// Protobuf, as kubectl asks for built-in types: lists of
			// thousands of Services decode in a fraction of JSON's time
			// and garbage. JSON stays acceptable for servers without it.
			g.ContentType = runtime.ContentTypeProtobuf
			g.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
		}
		rc, err := rest.RESTClientForConfigAndClient(&g, httpClient)
		if err != nil {
			return nil, fmt.Errorf("kubernetes client for %s: %w", gv, err)
		}
		return rc, nil
	}
	out := &Client{params: cd.params}
	if out.core, err = group(corev1.SchemeGroupVersion, "/api"); err != nil {
		return nil, err
	}
	if out.discovery, err = group(discoveryv1.SchemeGroupVersion, "/apis"); err != nil {
		return nil, err
	}
	if out.authorization, err = group(authorizationv1.SchemeGroupVersion, "/apis"); err != nil {
		return nil, err
	}
	return out, nil
}

// resource is one kind of object in one namespace ("" for all).
type resource struct {
	client    *rest.RESTClient
	params    runtime.ParameterCodec
	namespace string
	name      string // the resource, e.g. "services"
}

func (r resource) list(ctx context.Context, opts metav1.ListOptions, into runtime.Object) error {
	var timeout time.Duration
	if opts.TimeoutSeconds != nil {
		timeout = time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	return r.client.Get().NamespaceIfScoped(r.namespace, r.namespace != "").Resource(r.name).
		VersionedParams(&opts, r.params).Timeout(timeout).Do(ctx).Into(into)
}

func (r resource) watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	var timeout time.Duration
	if opts.TimeoutSeconds != nil {
		timeout = time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	opts.Watch = true
	return r.client.Get().NamespaceIfScoped(r.namespace, r.namespace != "").Resource(r.name).
		VersionedParams(&opts, r.params).Timeout(timeout).Watch(ctx)
}

// listWatch is the ListerWatcher of r for an informer; newList makes the
// list object it decodes into, and tweak (if set) adjusts every request.
func listWatch(r resource, newList func() runtime.Object, tweak func(*metav1.ListOptions)) cache.ListerWatcher {
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			if tweak != nil {
				tweak(&opts)
			}
			out := newList()
			if err := r.list(ctx, opts, out); err != nil {
				return nil, err
			}
			return out, nil
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			if tweak != nil {
				tweak(&opts)
			}
			return r.watch(ctx, opts)
		},
	}
}

// Services lists and watches the Services of namespace ("" for all), with
// tweak (if set) applied to every request (selectors).
func (c *Client) Services(namespace string, tweak func(*metav1.ListOptions)) cache.ListerWatcher {
	r := resource{client: c.core, params: c.params, namespace: namespace, name: "services"}
	return listWatch(r, func() runtime.Object { return &corev1.ServiceList{} }, tweak)
}

// EndpointSlices lists and watches the EndpointSlices of namespace ("" for
// all).
func (c *Client) EndpointSlices(namespace string) cache.ListerWatcher {
	r := resource{client: c.discovery, params: c.params, namespace: namespace, name: "endpointslices"}
	return listWatch(r, func() runtime.Object { return &discoveryv1.EndpointSliceList{} }, nil)
}

// Namespaces lists the cluster's namespaces.
func (c *Client) Namespaces(ctx context.Context) (*corev1.NamespaceList, error) {
	out := &corev1.NamespaceList{}
	r := resource{client: c.core, params: c.params, name: "namespaces"}
	if err := r.list(ctx, metav1.ListOptions{}, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Pod reads one pod.
func (c *Client) Pod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	out := &corev1.Pod{}
	err := c.core.Get().Namespace(namespace).Resource("pods").Name(name).
		VersionedParams(&metav1.GetOptions{}, c.params).Do(ctx).Into(out)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Pods lists the pods of a namespace that match a label selector.
func (c *Client) Pods(ctx context.Context, namespace, labelSelector string) (*corev1.PodList, error) {
	out := &corev1.PodList{}
	r := resource{client: c.core, params: c.params, namespace: namespace, name: "pods"}
	if err := r.list(ctx, metav1.ListOptions{LabelSelector: labelSelector}, out); err != nil {
		return nil, err
	}
	return out, nil
}

// CreatePod creates a pod and returns it as the server made it.
func (c *Client) CreatePod(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	out := &corev1.Pod{}
	err := c.core.Post().Namespace(pod.Namespace).Resource("pods").
		VersionedParams(&metav1.CreateOptions{}, c.params).Body(pod).Do(ctx).Into(out)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PatchPod applies a JSON merge patch to a pod.
func (c *Client) PatchPod(ctx context.Context, namespace, name string, mergePatch []byte) error {
	return c.core.Patch(types.MergePatchType).Namespace(namespace).Resource("pods").Name(name).
		VersionedParams(&metav1.PatchOptions{}, c.params).Body(mergePatch).Do(ctx).Error()
}

// DeletePod deletes a pod, if it is still the one with uid ("" for any).
func (c *Client) DeletePod(ctx context.Context, namespace, name string, uid types.UID) error {
	opts := &metav1.DeleteOptions{}
	if uid != "" {
		opts.Preconditions = &metav1.Preconditions{UID: &uid}
	}
	return c.core.Delete().Namespace(namespace).Resource("pods").Name(name).Body(opts).Do(ctx).Error()
}

// PodLog streams the log of one pod's container; the caller closes it.
func (c *Client) PodLog(ctx context.Context, namespace, name string, opts *corev1.PodLogOptions) (io.ReadCloser, error) {
	return c.core.Get().Namespace(namespace).Resource("pods").Name(name).SubResource("log").
		VersionedParams(opts, c.params).Stream(ctx)
}

// Allowed asks the server whether the client may do what attrs describe
// (a SelfSubjectAccessReview).
func (c *Client) Allowed(ctx context.Context, attrs authorizationv1.ResourceAttributes) (bool, error) {
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs}}
	out := &authorizationv1.SelfSubjectAccessReview{}
	err := c.authorization.Post().Resource("selfsubjectaccessreviews").
		VersionedParams(&metav1.CreateOptions{}, c.params).Body(review).Do(ctx).Into(out)
	if err != nil {
		return false, err
	}
	return out.Status.Allowed, nil
}

// ServerVersion asks the server for its version, the cheapest request that
// proves it can be reached and answers.
func (c *Client) ServerVersion(ctx context.Context) (*version.Info, error) {
	body, err := c.core.Get().AbsPath("/version").Do(ctx).Raw()
	if err != nil {
		return nil, err
	}
	var info version.Info
	if err := json.Unmarshal(body, &info); err != nil {
		return nil, fmt.Errorf("the server's version is not what a Kubernetes API server answers: %w", err)
	}
	return &info, nil
}

// PortForwardURL is the address of a pod's portforward subresource.
func (c *Client) PortForwardURL(namespace, pod string) *url.URL {
	return c.core.Verb(http.MethodPost).Namespace(namespace).Resource("pods").Name(pod).SubResource("portforward").URL()
}
