use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::service::request_info;
use crate::{Admission, HttpLimiter, Rejected, ResponseInfo};

pub(super) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pin_project! {
    /// The response future of [`LimiterService`](super::LimiterService).
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        // No limit applies: the inner future, untouched.
        Passthrough { #[pin] future: S::Future },
        // Waiting for the limiter (a storage across the network): boxed, so that the
        // common states, which every layer above moves, stay small.
        Deciding { deciding: Box<Deciding<S, ReqBody>> },
        // Allowed: the inner service answers.
        Calling { #[pin] future: S::Future, admission: Option<Admission> },
        // Answered by the limiter itself, without waiting.
        Answered { response: Option<S::Response> },
        // Deducting conditional limits after the response.
        Settling { settle: BoxFuture<Admission>, response: Option<S::Response> },
    }
}

/// What a decision that has to wait holds until the limiter answers.
struct Deciding<S, ReqBody> {
    decision: BoxFuture<Result<Admission, Rejected>>,
    limiter: HttpLimiter,
    inner: Option<S>,
    request: Option<Request<ReqBody>>,
}

impl<S, ReqBody> fmt::Debug for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(super) fn passthrough(future: S::Future) -> Self {
        ResponseFuture {
            state: State::Passthrough { future },
        }
    }

    pub(super) fn calling(future: S::Future, admission: Admission) -> Self {
        ResponseFuture {
            state: State::Calling {
                future,
                admission: Some(admission),
            },
        }
    }

    pub(super) fn answered(response: S::Response) -> Self {
        ResponseFuture {
            state: State::Answered {
                response: Some(response),
            },
        }
    }

    pub(super) fn deciding(
        limiter: HttpLimiter,
        decision: BoxFuture<Result<Admission, Rejected>>,
        inner: S,
        request: Request<ReqBody>,
    ) -> Self {
        ResponseFuture {
            state: State::Deciding {
                deciding: Box::new(Deciding {
                    decision,
                    limiter,
                    inner: Some(inner),
                    request: Some(request),
                }),
            },
        }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<String>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Passthrough { future } => return future.poll(cx),
                StateProj::Deciding { deciding } => {
                    let Deciding {
                        decision,
                        limiter,
                        inner,
                        request,
                    } = &mut **deciding;
                    let decided = ready!(decision.as_mut().poll(cx));
                    let (Some(mut service), Some(mut req)) = (inner.take(), request.take()) else {
                        // Polled again after completion; the state machine never does.
                        return Poll::Pending;
                    };
                    match decided {
                        Ok(admission) => {
                            req.extensions_mut().insert(admission.info());
                            let future = service.call(req);
                            this.state.set(State::Calling {
                                future,
                                admission: Some(admission),
                            });
                        }
                        Err(rejected) => {
                            let response =
                                limiter.rejection_response(&rejected, &request_info(&req));
                            return Poll::Ready(Ok(response.map(ResBody::from)));
                        }
                    }
                }
                StateProj::Calling { future, admission } => {
                    let mut response = ready!(future.poll(cx))?;
                    let Some(admission) = admission.take() else {
                        return Poll::Ready(Ok(response));
                    };
                    if !admission.needs_settling(response.status()) {
                        admission.write_headers(response.headers_mut());
                        return Poll::Ready(Ok(response));
                    }
                    let settle =
                        admission.settle(&ResponseInfo::new(response.status(), response.headers()));
                    this.state.set(State::Settling {
                        settle: Box::pin(settle),
                        response: Some(response),
                    });
                }
                StateProj::Answered { response } => {
                    return match response.take() {
                        Some(response) => Poll::Ready(Ok(response)),
                        None => Poll::Pending,
                    };
                }
                StateProj::Settling { settle, response } => {
                    let admission = ready!(settle.as_mut().poll(cx));
                    let Some(mut response) = response.take() else {
                        return Poll::Pending;
                    };
                    admission.write_headers(response.headers_mut());
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}
